"""Benchmarks: `tox -e bench` (or `uv run python -m bench [NAME ...]`). See docs/benchmarks.md."""
