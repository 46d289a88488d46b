"""salotto's benchmark: a load generator for any IRC server, and a runner that compares salotto with peers.

``python -m bench SCENARIO --port PORT`` measures one server; ``bench/run-peers`` starts ngircd, InspIRCd,
miniircd and salotto on loopback and runs every scenario against each. See docs/benchmarks.md.
"""
