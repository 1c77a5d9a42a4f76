"""``make bench`` runs end to end and writes well-formed results (never a speed check).

The smoke mode takes the same code path as ``make bench QUICK=1`` (every
server, every figure), with one-second runs and tiny key tables.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
FIGURES = {"F1", "F2", "F3 sqlite", "F3 postgresql", "F4 sqlite", "F4 postgresql"}
FIGURES |= {"F5", "F6", "F7", "F8", "F9", "F10"}
FIGURES |= {f"S{n} {engine}" for n in (1, 2, 3) for engine in ("sqlite", "postgresql")}
FIGURES |= {"S4 time", "S4 memory", "S5", "S6"}


@pytest.fixture(scope="module")
def bench_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--mode", "smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.mark.e2e
def test_results_name_every_figure_with_a_number_or_a_reason(bench_output: Path) -> None:
    result = json.loads((bench_output / "latest.json").read_text())
    assert result["mode"] == "smoke"
    assert result["machine"]["cpus"] >= 1
    figures = {figure["id"]: figure for figure in result["figures"]}
    assert set(figures) == FIGURES
    for figure in figures.values():
        assert figure["unit"] in ("ratio", "ms", "%", "s", "MiB", "bytes")
        if figure["target"] is None:  # reported, no target
            assert figure["target_op"] == ""
            assert figure["met"] is None
            assert math.isfinite(figure["value"])
            assert figure["value"] > 0
            continue
        assert figure["target_op"] in (">=", "<=")
        if figure["value"] is None:
            assert figure["note"].startswith("not measured"), figure
            assert figure["met"] is None
            continue
        assert math.isfinite(figure["value"])
        assert isinstance(figure["met"], bool)
        if figure["unit"] == "ratio":
            assert figure["value"] > 0, figure
            low, high = figure["spread"]
            assert low <= figure["value"] <= high
            for side in figure["sides"].values():
                assert side
                assert all(value > 0 for value in side)
            assert figure["details"]["unexpected_answers"] == 0, figure


@pytest.mark.e2e
def test_the_plot_and_the_page_are_written(bench_output: Path) -> None:
    assert (bench_output / "benchmarks.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = (bench_output / "benchmarks.md").read_text()
    assert "![The figures against their targets](benchmarks.png)" in page
    for figure in FIGURES:
        assert f"| {figure} |" in page
    assert "make bench QUICK=1" in page


@pytest.mark.e2e
def test_f8_measures_a_full_cache_and_f9_accounts_for_the_cores(bench_output: Path) -> None:
    figures = {
        figure["id"]: figure
        for figure in json.loads((bench_output / "latest.json").read_text())["figures"]
    }
    memory = figures["F8"]["details"]
    # Every key cached before the steady load (smoke mode: 50 keys), none added during it.
    assert memory["cached_keys_before"] >= 50
    assert memory["cached_keys_after"] == memory["cached_keys_before"]
    cores = figures["F9"]["details"]["cores_used"]
    assert [len(cores[side]["workers"]) for side in ("two workers", "one worker")] == [2, 1]
    assert "supervisor" in cores["two workers"]
    assert "supervisor" not in cores["one worker"]
    for used in cores.values():
        assert used["requests_per_second"] > 0
        assert sum(used["workers"]) > 0  # (one of two may get no connection of four)
        parts = [*used["workers"], *(used[name] for name in ("wrk", "softirq", "other", "idle"))]
        assert all(math.isfinite(part) and part >= 0 for part in parts)
    page = (bench_output / "benchmarks.md").read_text()
    assert "- cores used, two workers: " in page
