"""models/stats.py: each metric against a hand count."""
from __future__ import annotations

import math

import pytest

from models.stats import auc, latency_summary, percentile, rank_correlation


def test_percentile_is_the_nearest_rank_and_nan_when_empty():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 99) == 5.0
    assert percentile(values, 20) == 1.0  # ceil(0.2 * 5) = rank 1
    assert percentile(values, 21) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.0  # an observed value, not 1.5
    assert math.isnan(percentile([], 50))


def test_latency_summary_names_p50_p95_p99_and_max():
    summary = latency_summary([float(i) for i in range(1, 101)])
    assert summary == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert latency_summary([0.12345], digits=2)["max"] == 0.12
    assert all(math.isnan(v) for v in latency_summary([]).values())


def test_rank_correlation_is_spearman_with_one_rule_for_no_ranking():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 1, 0, -9]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3], [1, 1, 2]) == pytest.approx(0.8660254)  # ties take their mean rank
    assert rank_correlation([1, 2, 3], [5, 5, 5]) == 0.0
    assert rank_correlation([1, 1, 1], [1, 2, 3]) == 0.0
    assert rank_correlation([1, 2], [1, 2]) == 0.0


def test_auc_counts_ties_half_and_is_nan_without_both_sides():
    assert auc([0.9, 0.8, 0.1, 0.2], [1, 1, -1, -1]) == 1.0
    assert auc([0.1, 0.8, 0.9, 0.2], [1, 1, -1, -1]) == 0.25
    assert auc([0.5, 0.5], [1, -1]) == 0.5
    assert auc([0.9, 0.3, 0.1], [1, 0, -1]) == 1.0  # a label of 0 takes no part
    assert math.isnan(auc([0.1, 0.2], [1, 1]))
