"""Imported by Python at start when tools/memtrace is on PYTHONPATH (`bench soak --trace-memory`):
starts tools/memory_trace.py's tracer in this process."""
import os
import sys

_TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _TOOLS)
try:
    import memory_trace
    memory_trace.start_from_env()
finally:
    sys.path.remove(_TOOLS)
