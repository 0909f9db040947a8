"""The run's Prometheus configuration and the questions a run asks it, without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.monitoring.config import TOWERS_JOB, prometheus_config, towers_targets
from pipeline.monitoring.prometheus import RULES, prometheus_binary
from pipeline.monitoring.questions import ADVISORIES, P99, run_questions
from pipeline.shared.errors import ConfigError
from pipeline.shared.stats import LatencyHistogram, histogram_rank_sample, percentile


def test_towers_are_scraped_by_the_job_the_alert_rules_name_every_second() -> None:
    cfg = prometheus_config(Path("/run/t.json"), {"corridor-fleet": [20101], "corridor-gateways": []}, RULES)
    assert cfg["global"] == {"scrape_interval": "1000ms", "evaluation_interval": "1000ms"}
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs[TOWERS_JOB]["file_sd_configs"][0]["files"] == ["/run/t.json"]
    assert jobs["corridor-fleet"]["static_configs"][0]["targets"] == ["127.0.0.1:20101"]
    assert f'job="{TOWERS_JOB}"' in RULES.read_text(), "the rules read the job this scrapes"
    assert cfg["rule_files"] == [str(RULES)]


def test_without_a_fleet_only_the_towers_are_scraped() -> None:
    cfg = prometheus_config(Path("t.json"), {}, None)
    assert [j["job_name"] for j in cfg["scrape_configs"]] == [TOWERS_JOB] and cfg["rule_files"] == []


def test_targets_are_loopback_and_once_each() -> None:
    assert towers_targets([20002, 20001, 20002]) == [{"targets": ["127.0.0.1:20001", "127.0.0.1:20002"],
                                                        "labels": {}}]  # fmt: skip


class Answers:
    """Prometheus's answers as recorded: the function under test only reads them."""

    url = "http://127.0.0.1:1"

    def __init__(self, values: dict[str, float | None], alerts: list[str]) -> None:
        self.values, self.alerts = values, alerts

    def value(self, expr: str) -> float | None:
        return self.values.get(expr)

    def query(self, expr: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        assert "ALERTS" in expr
        return [{"labels": {"alertname": a}, "value": 1.0} for a in self.alerts]


def test_a_p99_one_bucket_off_agrees_and_two_do_not() -> None:
    got = run_questions(Answers({ADVISORIES: 92, P99["all"]: 0.045, P99["hazard"]: 0.075}, ["CorridorTowerDown"]),
                        92, {"all": [41.0] * 92, "hazard": [45.0] * 92}, 30)  # fmt: skip
    assert got["advisories_agree"] and got["p99_agree"] == {"all": True, "hazard": False}
    assert got["p99_ms"] == {"all": 45.0, "hazard": 75.0} and got["alerts_fired"] == ["CorridorTowerDown"]


def _histogram_quantile(q: float, hist: LatencyHistogram) -> float:
    """PromQL's rule: the bucket whose cumulative count first reaches q x n, interpolated linearly in it."""
    rank, below = q * hist.n, 0
    for i, count in enumerate(hist.counts):
        if below + count >= rank:
            lower = hist.bounds[i - 1] if i else 0.0
            return lower + (hist.bounds[i] - lower) * (rank - below) / count
        below += count
    raise AssertionError("rank past the last bucket")


def test_a_sparse_tail_is_held_against_the_sample_the_histogram_quantile_falls_beside() -> None:
    """As in a CI run: 189 advisories, the 187th at 39 ms and two more past 50 ms. The nearest-rank
    p99 is the 187th; histogram_quantile's rank 0.99 x 189 = 187.1 lands in the 188th's bucket."""
    samples = [20.0] * 186 + [39.0, 55.0, 56.0]
    hist = LatencyHistogram()
    for ms in samples:
        hist.observe(ms / 1000)
    estimate = _histogram_quantile(0.99, hist)
    assert round(estimate * 1000, 1) == 50.5, "what Prometheus answered in that run"
    assert percentile(samples, 99) == 39.0 and histogram_rank_sample(samples, 99) == 55.0
    got = run_questions(Answers({ADVISORIES: 189, P99["all"]: estimate, P99["hazard"]: None}, []), 189,
                        {"all": samples, "hazard": []}, 30)  # fmt: skip
    assert got["p99_agree"] == {"all": True, "hazard": True}
    assert histogram_rank_sample([], 99) != histogram_rank_sample([], 99), "none: NaN"
    assert histogram_rank_sample([7.0], 99) == 7.0 and histogram_rank_sample(list(map(float, range(1, 101))), 99) == 99


@pytest.mark.parametrize(("estimate", "own", "agree"), [(float("nan"), [], True), (None, [], True),
                                                         (0.01, [], False), (float("nan"), [10.0], False)])  # fmt: skip
def test_no_samples_agree_only_with_no_samples(estimate: float | None, own: list[float], agree: bool) -> None:
    got = run_questions(Answers({ADVISORIES: 0, P99["all"]: 0.01, P99["hazard"]: estimate}, []), 0,
                        {"all": [10.0], "hazard": own}, 5)  # fmt: skip
    assert got["p99_agree"]["hazard"] is agree


def test_a_count_prometheus_has_not_caught_up_with_is_said() -> None:
    got = run_questions(Answers({ADVISORIES: 90, P99["all"]: 0.01, P99["hazard"]: None}, []), 92,
                        {"all": [10.0], "hazard": []}, 5, wait_s=0.2)  # fmt: skip
    assert got["advisories_agree"] is False


def test_a_prometheus_named_that_is_not_an_executable_is_a_one_line_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CORRIDOR_PROMETHEUS", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="not an executable"):
        prometheus_binary()
    monkeypatch.delenv("CORRIDOR_PROMETHEUS")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="Debian"):
        prometheus_binary()
