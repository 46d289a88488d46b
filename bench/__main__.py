"""``python -m bench``: run one scenario against any IRC server at host:port (see docs/benchmarks.md)."""

from bench.cli import main

raise SystemExit(main())
