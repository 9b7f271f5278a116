"""The soak's figures (`bench soak`): memory growth, frame rate and faults over a long run, and the
signal that ended a crashed run."""
from __future__ import annotations

import signal

import numpy as np


def growth_mb_per_hour(times_s: np.ndarray, rss: np.ndarray) -> float:
    """Slope of the least-squares line through (time, RSS), in MB per hour."""
    if len(times_s) < 3 or float(np.ptp(times_s)) <= 0:
        return float("nan")
    slope_mb_per_s = np.polyfit(times_s, rss, 1)[0]
    return float(slope_mb_per_s * 3600.0)


def per_minute(times_s: np.ndarray, rss: np.ndarray) -> list[float]:
    """Median RSS of each whole minute, in MB: the series behind the slope, for the record."""
    minutes = (times_s // 60).astype(int)
    return [round(float(np.median(rss[minutes == m])), 1) for m in np.unique(minutes)]


def summarise(times_s: list[float], rss: list[float], warmup_s: float, show: list[dict],
              tree_rss: list[float] | None = None) -> dict:
    """The figures; `tree_rss` (optional, one per sample): the process with all its child processes."""
    t = np.asarray(times_s, float)
    r = np.asarray(rss, float)
    after = t >= warmup_s
    status = [r for r in show if r.get("kind") == "status"]
    t0_s = float(status[0]["t_s"]) if status else 0.0
    fps = [float(s["fps"]) for s in status if s.get("fps") is not None and float(s["t_s"]) - t0_s >= warmup_s]
    last = status[-1] if status else {}
    stop: dict = next((r for r in reversed(show) if r.get("kind") == "stop"), {})
    tree = np.asarray(tree_rss if tree_rss is not None and len(tree_rss) == len(r) else [], float)
    with_children = {} if not len(tree) else {
        "rss_tree_mb_start": round(float(tree[after][0]), 1) if after.any() else None,
        "rss_tree_mb_end": round(float(tree[-1]), 1),
        "rss_tree_growth_mb_per_hour": round(growth_mb_per_hour(t[after], tree[after]), 2)}
    return {
        "minutes": round(float(t[-1]) / 60.0, 2) if len(t) else 0.0,
        "warmup_minutes": round(warmup_s / 60.0, 2),
        "samples": int(after.sum()),
        "rss_mb_start": round(float(r[after][0]), 1) if after.any() else None,
        "rss_mb_end": round(float(r[-1]), 1) if len(r) else None,
        "rss_mb_max": round(float(r.max()), 1) if len(r) else None,
        "rss_growth_mb_per_hour": round(growth_mb_per_hour(t[after], r[after]), 2),
        "rss_mb_per_minute": per_minute(t, r),
        "fps_median": round(float(np.median(fps)), 1) if fps else None,
        "fps_p5": round(float(np.percentile(fps, 5)), 1) if fps else None,
        "faults": sum(1 for r in show if r.get("kind") == "fault"),
        "restarts": last.get("restarts"),
        "failures": last.get("failures"),
        "drops": last.get("drops"),
        "stop_reason": stop.get("reason"),
        **with_children,
    }


def crash_of(returncode: int | None) -> str | None:
    """The signal that ended the process ("SIGSEGV"), None for an exit or a stop the soak asked for."""
    if returncode is None or returncode >= 0 or returncode == -signal.SIGTERM:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
