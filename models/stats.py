"""The metrics the benches and evals report, each defined once.

- `percentile`: nearest rank (an observed value, never an interpolation between two), NaN when empty.
- `latency_summary`: p50, p95, p99 and max of a list of latencies, by `percentile`.
- `rank_correlation`: Spearman's rho (ties take their mean rank); 0.0 where no ranking can be
  compared (fewer than 3 pairs, or either side constant).
- `auc`: the chance that a positive scores above a negative (ties count half); NaN if a side is empty.
- `RecentValues`: the last N samples of a measurement, in one array allocated at the start (a
  deque of N Python floats grows about 32 bytes a sample until full, which at a note's rate takes
  the first half hour of a show: growth a soak cannot tell from a leak).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The `q`th percentile (0..100) by nearest rank; NaN for no values."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return math.nan
    return float(np.percentile(a, q, method="inverted_cdf"))


def latency_summary(values: Sequence[float] | np.ndarray, digits: int = 3) -> dict[str, float]:
    """{"p50", "p95", "p99", "max"}, rounded to `digits`; NaN each for no values."""
    return {name: round(percentile(values, q), digits) for name, q in
            (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("max", 100.0))}


def rank_correlation(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho of paired values; 0.0 for fewer than 3 pairs or a constant side."""
    from scipy.stats import spearmanr

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def auc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """How well `scores` separate positive labels (> 0) from negative ones (< 0): the Mann-Whitney U
    over the pairs, ties counting half. Labels of 0 take no part. NaN if either side is empty."""
    from scipy.stats import mannwhitneyu

    s, l = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    pos, neg = s[l > 0], s[l < 0]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    return float(mannwhitneyu(pos, neg).statistic) / (pos.size * neg.size)


class RecentValues:
    """Append from any thread; `values()` gives the kept ones, oldest first."""

    def __init__(self, capacity: int) -> None:
        self._values = np.zeros(max(1, int(capacity)), dtype=float)
        self._count = 0  # values ever appended
        self._lock = threading.Lock()

    def append(self, value: float) -> None:
        with self._lock:
            self._values[self._count % len(self._values)] = value
            self._count += 1

    def __len__(self) -> int:
        return min(self._count, len(self._values))

    def values(self) -> np.ndarray:
        with self._lock:
            n, capacity = self._count, len(self._values)
            if n <= capacity:
                return self._values[:n].copy()
            at = n % capacity
            return np.concatenate((self._values[at:], self._values[:at]))
