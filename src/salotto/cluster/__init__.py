"""Several salotto nodes as one network: Redis between them (docs/cluster.md)."""
