"""lite-debug's benchmark suite: each performance figure as a ratio against a baseline measured in the same run.

Run it from the repository root with ``python -m bench`` (see ``bench/README.md``). It is a
measurement to read, not a test: nothing here runs in CI, and a missed target is reported in
the table, not raised.
"""
