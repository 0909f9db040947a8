"""What `corridor stack wait --towers` (and `simulate --wait`) counts as towers being there."""

from __future__ import annotations

from pipeline.stack.wait import towers_missing


def _space(alive: list[str], owners: dict[int, str]) -> dict[str, dict[str, bytes]]:
    return {
        "towers": {name: b"{}" for name in alive},
        "regions": {**{f"{r}/owner": w.encode() for r, w in owners.items()}, **{str(r): b"{}" for r in owners}},
    }


def test_every_region_needs_a_live_owner() -> None:
    assert towers_missing({}, 3) == "no tower worker owns region(s) 0, 1, 2"
    spaces = {"corridor-towers": _space(["w0", "w1"], {0: "w0", 1: "w1", 2: "w1"})}
    assert towers_missing(spaces, 3) is None
    assert towers_missing(spaces, 4) == "no tower worker owns region(s) 3"


def test_an_owner_that_left_does_not_count() -> None:
    spaces = {"corridor-towers": _space(["w0"], {0: "w0", 1: "gone"})}
    assert towers_missing(spaces, 2) == "no tower worker owns region(s) 1"


def test_one_set_of_towers_must_cover_the_corridor_alone() -> None:
    """Two half sets (an old run's towers beside new ones) are not one whole."""
    spaces = {"a": _space(["a0"], {0: "a0"}), "b": _space(["b0"], {1: "b0"})}
    assert towers_missing(spaces, 2) is not None
