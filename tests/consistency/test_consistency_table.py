"""The consistency table from the workers' staleness samples: joined across workers, per class."""

from __future__ import annotations

from pipeline.consistency.table import CLASSES, markdown, staleness_table


def page(merges=(), lag=(), made=None, seen=None, snapshots=(), global_seen=None) -> dict:
    etcd = {"snapshot_ages_ms": list(snapshots), "global_seen": global_seen or {}}
    return {"merges": [list(m) for m in merges], "vehicle_lag_ms": list(lag), "hazard_made": made or {},
            "hazard_seen": seen or {}, "etcd": etcd}  # fmt: skip


def rows(pages: list[dict]) -> dict[str, dict]:
    return {r["class"]: r for r in staleness_table(pages)}


def test_a_sync_message_counts_once_at_its_slowest_receiver() -> None:
    a = page(merges=[("IMPORTANT", 3, 1000, 900), ("IMPORTANT", 3, 2000, 800), ("UNIMPORTANT", 3, 5000, 9000)])
    b = page(merges=[("IMPORTANT", 3, 1000, 1500), ("IMPORTANT", 4, 1000, 700)])
    r = rows([a, b])
    assert r["membership"]["n"] == 3 and r["membership"]["max_ms"] == 1500
    assert r["membership"]["p50_ms"] == 800
    assert (r["aggregates"]["n"], r["aggregates"]["max_ms"]) == (1, 9000)


def test_a_hazard_is_as_stale_as_its_last_sighting_and_one_never_seen_is_counted() -> None:
    owner = page(made={"deer": 100, "ice": 500}, seen={"deer": 100, "ice": 500}, global_seen={"deer": 1400})
    other = page(seen={"deer": 350}, global_seen={"deer": 1100})
    r = rows([owner, other])
    assert (r["hazards"]["n"], r["hazards"]["max_ms"], r["hazards"]["never_seen_by_some_worker"]) == (1, 250, 1)
    assert r["global_view"]["max_ms"] == 1000, "the first commit that held it, whoever made it"
    lines = markdown(staleness_table([owner, other]), 2)
    assert any("never reached every worker" in line for line in lines)


def test_every_class_has_a_row_even_without_samples() -> None:
    r = staleness_table([page(lag=[5, 15, 25], snapshots=[1200])])
    assert [x["class"] for x in r] == [c.key for c in CLASSES]
    by = {x["class"]: x for x in r}
    assert by["vehicle_state"]["p50_ms"] == 15 and by["etcd_snapshot"]["n"] == 1
    assert by["membership"]["n"] == 0 and by["membership"]["p99_ms"] is None
    assert "| – / – / – | 0 |" in "\n".join(markdown(r, 1))
