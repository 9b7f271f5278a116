"""Where a long-running process's memory goes: once a minute, the Python heap by allocation site
(tracemalloc, started at the warm-up: what was allocated since and is still alive), live objects
by type (gc), threads, open files and the native side (anonymous memory from
/proc/self/smaps_rollup, glibc's heap from mallinfo2), compared with the first sample after the
warm-up. One JSON line per sample.

It starts inside the traced process: `bench soak --trace-memory FILE` puts tools/memtrace on
PYTHONPATH, whose sitecustomize calls `start_from_env()`. The environment variable is removed
once read, so the processes the installation starts are not traced. To read a trace:

    python tools/memory_trace.py FILE [--top 20]
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

ENV_FILE = "CHROMESTHESIA_MEMTRACE"
ENV_WARMUP_S = "CHROMESTHESIA_MEMTRACE_WARMUP_S"
ENV_PERIOD_S = "CHROMESTHESIA_MEMTRACE_PERIOD_S"
ENV_SITES = "CHROMESTHESIA_MEMTRACE_SITES"
""""1": also trace allocation sites (tracemalloc); its own tables then grow the native heap."""
FRAMES = 4
TOP = 25


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


_LIBC: list = []


def _mallinfo2() -> _Mallinfo2:
    if not _LIBC:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        _LIBC.append(libc)
    return _LIBC[0].mallinfo2()


def mappings() -> dict:
    """Resident MB by kind of mapping: glibc's main arena ([heap]), its other arenas (anonymous
    mappings aligned to 64 MB, glibc's heap size; a stray mapping may land there too), thread stacks, other anonymous memory (mmapped blocks,
    Python's own arenas, libraries' pools) and files."""
    out = collections.Counter()
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as f:
            kind = "file"
            for line in f:
                first = line.split(maxsplit=6)
                if "-" in first[0] and not first[0].endswith(":"):
                    start, end = (int(x, 16) for x in first[0].split("-"))
                    name = first[5].strip() if len(first) > 5 else ""
                    if name == "[heap]":
                        kind = "heap"
                    elif name.startswith("[stack"):
                        kind = "stacks"
                    elif name:
                        kind = "file" if name.startswith("/") else "other_anon"
                    elif start % (64 * 2**20) == 0:  # glibc aligns each heap of its other arenas to 64 MB
                        kind = "arenas"
                    else:
                        kind = "other_anon"
                elif first[0] == "Rss:":
                    out[kind] += int(first[1])
    except OSError:
        return {}
    return {f"rss_{kind}_mb": round(kb / 1024.0, 1) for kind, kb in sorted(out.items())}


def native() -> dict:
    """Resident and anonymous memory (MB) and glibc's heap (MB: arenas, mmapped blocks, in use, free)."""
    out: dict = {}
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in ("Rss:", "Anonymous:", "Private_Dirty:"):
                    out[parts[0].rstrip(":").lower() + "_mb"] = round(int(parts[1]) / 1024.0, 1)
    except OSError:
        pass
    try:
        info = _mallinfo2()
        for name in ("arena", "hblkhd", "uordblks", "fordblks"):
            out[f"malloc_{name}_mb"] = round(getattr(info, name) / 2**20, 1)
    except (OSError, AttributeError):
        pass
    try:
        out["threads_native"] = len(os.listdir("/proc/self/task"))
        out["fds"] = len(os.listdir("/proc/self/fd"))
    except OSError:
        pass
    return {**out, **mappings()}


def _sites(snapshot: tracemalloc.Snapshot, baseline: tracemalloc.Snapshot | None, top: int) -> list[dict]:
    if baseline is None:
        return []
    diff = snapshot.compare_to(baseline, "traceback")
    diff.sort(key=lambda d: d.size_diff, reverse=True)
    return [{"kb": round(d.size_diff / 1024.0, 1), "count": d.count_diff,
             "where": [f"{f.filename.rsplit('/site-packages/', 1)[-1]}:{f.lineno}" for f in d.traceback]}
            for d in diff[:top] if d.size_diff > 0]


def _types() -> collections.Counter:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


class Tracer:
    """Tracing starts at the warm-up, so a snapshot holds only what was allocated since and is
    still alive: small, and quick to take beside a running show."""

    def __init__(self, path: Path, warmup_s: float, period_s: float, sites: bool = True) -> None:
        self.path = path
        self.sites = sites
        self.warmup_s = warmup_s
        self.period_s = period_s
        self.started_s = time.monotonic()
        self.first: tracemalloc.Snapshot | None = None
        self.first_types: collections.Counter | None = None
        self.first_threads: collections.Counter | None = None

    def sample(self) -> dict:
        elapsed_s = time.monotonic() - self.started_s
        threads = collections.Counter(t.name.rstrip("0123456789-_ ()") or t.name for t in threading.enumerate())
        record: dict = {"t_s": round(elapsed_s, 1), **native(), "threads_python": sum(threads.values())}
        if self.first_types is None:
            if elapsed_s >= self.warmup_s:
                if self.sites:
                    tracemalloc.start(FRAMES)
                self.first_types, self.first_threads = _types(), threads
            return record
        if not self.sites:
            record["types"] = dict((_types() - self.first_types).most_common(TOP))
            record["thread_names_grown"] = dict(threads - (self.first_threads or collections.Counter()))
            return record
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)])
        record["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 2)
        if self.first is None:
            self.first = snapshot
        record["sites"] = _sites(snapshot, self.first, TOP)
        if self.first_types is not None and self.first_threads is not None:
            record["types"] = dict((_types() - self.first_types).most_common(TOP))
            record["thread_names_grown"] = dict(threads - self.first_threads)
        return record

    def run(self) -> None:
        while True:
            time.sleep(self.period_s)
            try:
                record = self.sample()
            except Exception as exc:  # a diagnostic must never end the show
                record = {"error": repr(exc)}
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def start_from_env() -> None:
    """Start the sampler when ENV_FILE names a file (and forget it, so child processes are not traced)."""
    path = os.environ.pop(ENV_FILE, None)
    if not path:
        return
    warmup_s = float(os.environ.pop(ENV_WARMUP_S, "120"))
    period_s = float(os.environ.pop(ENV_PERIOD_S, "60"))
    tracer = Tracer(Path(path), warmup_s, period_s, sites=os.environ.pop(ENV_SITES, "0") == "1")
    threading.Thread(target=tracer.run, name="memory-trace", daemon=True).start()


def summary(records: list[dict], top: int) -> str:
    """The last sample's growth since the warm-up: native, Python heap, top sites and types."""
    samples = [r for r in records if "t_s" in r]
    if not samples:
        return "no samples"
    first = next((r for r in samples if r.get("types") is not None), samples[0])
    last = samples[-1]
    lines = [f"{len(samples)} samples, {samples[0]['t_s']:.0f}-{last['t_s']:.0f} s"]
    for key in ("rss_mb", "anonymous_mb", "traced_mb", "malloc_arena_mb", "malloc_hblkhd_mb",
                "malloc_uordblks_mb", "malloc_fordblks_mb", "rss_heap_mb", "rss_arenas_mb", "rss_other_anon_mb",
                "rss_stacks_mb", "rss_file_mb", "threads_native", "threads_python", "fds"):
        if key in first and key in last:
            lines.append(f"  {key:22s} {first[key]:>10} -> {last[key]:>10}")
    lines.append("grown since the warm-up (Python allocation sites):")
    for site in (last.get("sites") or [])[:top]:
        lines.append(f"  {site['kb']:>9.1f} KB {site['count']:>+7d}  {' <- '.join(reversed(site['where']))}")
    lines.append(f"grown object types: {json.dumps(last.get('types', {}))}")
    lines.append(f"grown threads: {json.dumps(last.get('thread_names_grown', {}))}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    records = [json.loads(line) for line in args.trace.read_text(encoding="utf-8").splitlines() if line.strip()]
    print(summary(records, args.top))


if __name__ == "__main__" and sys.argv[0].endswith("memory_trace.py"):
    main()
