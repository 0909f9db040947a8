"""Every input the fuzzer ever broke a decoder with (tests/fuzz/regressions/<target>/), and every
seed it starts from, replayed through its target: each must now pass without an exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.seeds import seeds
from tests.fuzz.targets import TARGETS

KEPT = sorted((Path(__file__).parent / "regressions").glob("*/*"))


@pytest.mark.parametrize("path", KEPT, ids=[f"{p.parent.name}/{p.name}" for p in KEPT])
def test_an_input_the_fuzzer_kept_passes_its_target(path: Path) -> None:
    TARGETS[path.parent.name](path.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_takes_its_seeds(target: str) -> None:
    assert seeds()[target], "a target with no seed starts blind"
    for seed in seeds()[target]:
        TARGETS[target](seed)
