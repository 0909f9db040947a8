"""Latency buckets as Prometheus reads them, against the percentile every report computes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.shared.stats import LATENCY_BOUNDS_S, LatencyHistogram, bucket_index, buckets_apart


def test_a_value_on_a_bound_is_counted_in_that_bucket_and_past_the_last_in_inf() -> None:
    h = LatencyHistogram()
    for seconds in (0.004, 0.005, 0.0051, 25.0):
        h.observe(seconds)
    cumulative = dict(h.cumulative())
    assert cumulative["0.005"] == 2 and cumulative["0.01"] == 3
    assert cumulative["20.0"] == 3 and cumulative["+Inf"] == 4 == h.n
    assert h.total_s == pytest.approx(25.0141)


def test_bounds_that_do_not_rise_are_refused() -> None:
    with pytest.raises(ValueError, match="rise"):
        LatencyHistogram(bounds=(0.1, 0.05))


def test_buckets_apart_counts_the_buckets_between_two_latencies() -> None:
    assert buckets_apart(0.041, 0.05) == 0
    assert buckets_apart(0.049, 0.051) == 1
    assert buckets_apart(0.049, 0.061) == 2


@given(st.lists(st.floats(0.0005, 30.0, allow_nan=False), min_size=1, max_size=300))
def test_the_bucket_where_the_count_crosses_99_percent_holds_the_99th_percent_sample(values: list[float]) -> None:
    """The bucket PromQL's histogram_quantile(0.99, …) interpolates within is the one that holds the
    sample at rank ⌈0.99·n⌉: the run's own p99 (nearest rank, the same sample or its neighbour) is
    then in it or one beside it whenever the tail's neighbouring samples are."""
    h = LatencyHistogram()
    for v in values:
        h.observe(v)
    counts = [c for _, c in h.cumulative()]
    assert counts == sorted(counts) and counts[-1] == len(values)
    crossing = next(i for i, c in enumerate(counts) if c >= 0.99 * len(values))
    assert crossing == bucket_index(sorted(values)[math.ceil(0.99 * len(values)) - 1])
    assert math.isclose(h.total_s, sum(values), rel_tol=1e-9)


def test_the_bounds_are_fine_around_the_budgets() -> None:
    assert 0.05 in LATENCY_BOUNDS_S and 0.1 in LATENCY_BOUNDS_S and 10.0 in LATENCY_BOUNDS_S


@given(st.lists(st.floats(-1.0, 30.0, allow_nan=False), max_size=200))
def test_a_batch_lands_in_the_buckets_one_at_a_time_would(values: list[float]) -> None:
    one, batch = LatencyHistogram(), LatencyHistogram()
    for v in values:
        one.observe(v)
    batch.observe_many(values)
    assert batch.counts == one.counts and batch.n == one.n
    assert math.isclose(batch.total_s, one.total_s, rel_tol=1e-9, abs_tol=1e-9)
