"""Helpers of ``bench/api_bench.py``: server process, workload, closed-loop runner, preload,
report. Imported with ``bench/`` on ``sys.path`` (the script's own folder)."""
