"""funcgraph's benchmark suite: hand-written nodes against what a user would otherwise pick.

Run it with `python -m benchmarks.run` (add `--quick` for the smoke-test sizes). Every ratio is
measured in one run, with the two sides interleaved; see `docs/benchmarks.md`.
"""
