"""The bench's table reads whole on an 80-column terminal (or a pipe): names wrap, never cut."""

from __future__ import annotations

import io

from rich.console import Console

from pipeline.bench.report import render


def test_long_metric_names_wrap_instead_of_being_cut_at_80_columns() -> None:
    buf = io.StringIO()
    results = {
        "towers": {"workers_1_updates_per_s": 256_648.83, "aiokafka_decode_updates_per_s": 1_603_741.32},
        "recovery": {"vehicles_100000": {"start_to_tables_equal_s": 3.65}},
        "machine": {},
    }
    render(results, Console(file=buf, width=80, color_system=None))
    text = buf.getvalue()
    assert "…" not in text
    joined = "".join(line.split("│")[2].strip() for line in text.splitlines() if line.count("│") > 3)
    assert "vehicles_100000.start_to_tables_equal_s" in joined and "aiokafka_decode_updates_per_s" in joined
    assert "met" in text, "3.65 s against its ≤ 5 s target"
