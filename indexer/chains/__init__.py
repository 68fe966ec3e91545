"""Chain sources: the I/O edge that turns RPC replies into BlockRefs and TokenEvents."""
