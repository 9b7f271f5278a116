"""tools/memory_trace.py: started by the environment inside a process, samples what grew after the
warm-up, and leaves the process's own children untraced."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = r"""
import os, subprocess, sys, threading, time
class Blob:
    def __init__(self):
        self.data = bytearray(200_000)
keep = []
for _ in range(20):
    keep.append(Blob())
    threading.Thread(target=time.sleep, args=(30,), name="sleeper", daemon=True).start()
    time.sleep(0.1)
child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('CHROMESTHESIA_MEMTRACE', ''))"],
                       capture_output=True, text=True)
print("child:" + child.stdout.strip())
"""


def run_traced(tmp_path: Path, sites: bool) -> tuple[list[dict], str]:
    trace = tmp_path / "trace.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tools" / "memtrace"), "CHROMESTHESIA_MEMTRACE": str(trace),
           "CHROMESTHESIA_MEMTRACE_WARMUP_S": "0.25", "CHROMESTHESIA_MEMTRACE_PERIOD_S": "0.2",
           "CHROMESTHESIA_MEMTRACE_SITES": "1" if sites else "0"}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in trace.read_text().splitlines()], out.stdout


def test_growth_after_the_warm_up_is_found_by_site_type_and_thread(tmp_path):
    records, stdout = run_traced(tmp_path, sites=True)
    assert "child:\n" in stdout + "\n"  # the variable was taken out of the environment: the child is not traced
    assert len(records) >= 3 and all("error" not in r for r in records)
    last = records[-1]
    assert last["rss_mb"] > 0 and last["threads_native"] >= last["threads_python"] - 1
    assert last["thread_names_grown"].get("sleeper", 0) >= 2
    assert last["types"].get("Blob", 0) >= 2
    top = last["sites"][0]
    assert top["kb"] >= 400 and any(where.startswith("<string>") for where in top["where"])


def test_without_sites_no_allocation_is_traced_and_the_summary_reads(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import memory_trace
    finally:
        sys.path.remove(str(ROOT / "tools"))
    records, _ = run_traced(tmp_path, sites=False)
    assert all("sites" not in r and "traced_mb" not in r for r in records)
    text = memory_trace.summary(records, top=5)
    assert "rss_mb" in text and "Blob" in text and "sleeper" in text
