"""A partial ``make bench`` run (``--figures speed|scale``) keeps the other group's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import report


def _figure(figure_id: str, value: float) -> dict[str, Any]:
    return {
        "id": figure_id,
        "title": figure_id,
        "unit": "ratio",
        "target": 1.0,
        "target_op": ">=",
        "value": value,
        "spread": [value, value],
        "met": value >= 1.0,
        "sides": {},
        "details": {},
        "note": "",
    }


def _result(mode: str, date: str, *figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": report.SCHEMA_VERSION,
        "mode": mode,
        "date": date,
        "machine": {"cpus": 2, "cpu_model": "x", "python": "3.11"},
        "seconds_total": 10.0,
        "settings": {},
        "figures": list(figures),
    }


def test_a_scale_run_keeps_the_speed_figures_labelled_with_their_run(tmp_path: Path) -> None:
    earlier = _result("full", "D1", _figure("F1", 0.5), _figure("F10", 0.9), _figure("S1", 9.0))
    scale = _result("full", "D2", _figure("S1 sqlite", 1.0), _figure("S5", 0.1))
    merged = report.keep_unmeasured(scale, earlier)
    assert [f["id"] for f in merged["figures"]] == ["F1", "F10", "S1 sqlite", "S5"]
    assert merged["figures"][0]["run"] == {"mode": "full", "date": "D1"}
    assert "run" not in merged["figures"][2]  # measured by this run
    report.write_markdown(tmp_path / "page.md", merged, "plot.png")
    page = (tmp_path / "page.md").read_text()
    assert "F1..F10 in mode `full` on D1; S1..S5 in mode `full` on D2" in page


def test_results_of_another_schema_are_not_kept() -> None:
    earlier = _result("full", "D1", _figure("F1", 0.5))
    earlier["schema"] = report.SCHEMA_VERSION + 1
    scale = _result("quick", "D2", _figure("S5", 0.1))
    assert report.keep_unmeasured(scale, earlier) == scale
    assert report.keep_unmeasured(scale, None) == scale
