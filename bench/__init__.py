"""Benchmarks (not tests): workload chain, backfill, peers, live latency; `python -m bench.run`."""
