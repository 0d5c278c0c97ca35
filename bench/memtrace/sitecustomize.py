"""Imported by Python at start-up when this folder is on PYTHONPATH (bench/memory.py --trace):
records the CUDA allocator's history for bench/allocator.py, leaving the script unchanged."""

import os

if os.environ.get("FTPLAN_MEMTRACE"):
    from bench import allocator

    allocator.install(os.environ["FTPLAN_MEMTRACE"], os.environ.get("FTPLAN_MEMTRACE_EVENTS"))
