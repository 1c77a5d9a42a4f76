"""What a run leaves behind: ``results/latest.json``, the plot and ``docs/benchmarks.md``."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from benchmarks.explain import ACCOUNTS, EXPLANATIONS, INTRO, REPRODUCE

SCHEMA_VERSION = 1


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def group(figure_id: str) -> str:
    """``speed`` for F1..F10, ``scale`` for S1..S6."""
    return "scale" if figure_id.startswith("S") else "speed"


def keep_unmeasured(result: dict[str, Any], earlier: dict[str, Any] | None) -> dict[str, Any]:
    """A run of one group (``--figures speed`` or ``scale``) keeps the other group's figures
    from the earlier results, each still labelled with the run that measured it."""
    if earlier is None or earlier.get("schema") != result["schema"]:
        return result
    measured = {group(figure["id"]) for figure in result["figures"]}
    kept = []
    for figure in earlier["figures"]:
        if group(figure["id"]) not in measured:
            figure.setdefault("run", {"mode": earlier["mode"], "date": earlier.get("date", "")})
            kept.append(figure)
    merged = dict(result)
    merged["figures"] = sorted(
        result["figures"] + kept, key=lambda figure: group(figure["id"]) == "scale"
    )
    return merged


def _runs_line(result: dict[str, Any]) -> str:
    runs: dict[tuple[str, str], list[str]] = {}
    for figure in result["figures"]:
        run = figure.get("run") or {"mode": result["mode"], "date": result.get("date", "")}
        runs.setdefault((run["mode"], run["date"]), []).append(figure["id"].split()[0])
    if len(runs) == 1:
        return f"mode `{result['mode']}`" + (f" on {result['date']}" if result.get("date") else "")
    parts = []
    for (mode, date), ids in runs.items():
        names = sorted(set(ids), key=lambda name: (name[0], int(name[1:])))
        parts.append(f"{names[0]}..{names[-1]} in mode `{mode}` on {date or 'an earlier run'}")
    return "; ".join(parts)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


def _fmt(figure: dict[str, Any]) -> str:
    value = figure["value"]
    if value is None:
        return "not measured"
    unit = figure["unit"]
    if unit == "ratio":
        text = f"{value:.2f}"
        if figure["spread"]:
            low, high = figure["spread"]
            text += f" ({low:.2f} to {high:.2f})"
        return text
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "%":
        return f"{value:+.2f} %"
    return f"{value:,.1f} {unit}"


def _target(figure: dict[str, Any]) -> str:
    if figure["target"] is None:
        return "reported"
    text = f"{figure['target_op']} {figure['target']:g}"
    unit = figure["unit"]
    return text if unit == "ratio" else f"{text} {unit}"


def _verdict(figure: dict[str, Any]) -> str:
    return {True: "met", False: "**missed**", None: "—"}[figure["met"]]


def _figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = []
    for figure in result["figures"]:
        figures.append(figure)
        read = figure.get("details", {}).get("read")
        if read:
            figures.append(read)
    return figures


def write_markdown(path: Path, result: dict[str, Any], plot_name: str) -> None:
    lines = [INTRO.strip(), ""]
    m = result["machine"]
    lines += [
        f"Last run: {_runs_line(result)}, {m['cpus']} CPUs ({m['cpu_model'] or 'unknown'}), "
        f"Python {m['python']}; the last run took {result['seconds_total']:.0f} s.",
        "",
        f"![The figures against their targets]({plot_name})",
        "",
        "| figure | measures | result (median, spread) | target | |",
        "| --- | --- | --- | --- | --- |",
    ]
    for figure in _figures(result):
        lines.append(
            f"| {figure['id']} | {figure['title']} | {_fmt(figure)} | {_target(figure)} "
            f"| {_verdict(figure)} |"
        )
    lines += ["", "## The figures", ""]
    for figure in _figures(result):
        key = figure["id"].split()[0]
        lines.append(f"### {figure['id']}: {figure['title']}")
        lines.append("")
        lines.append(EXPLANATIONS.get(key, "").strip())
        lines.append("")
        if figure.get("sides"):
            unit = figure.get("sides_unit", "requests/s")
            for side, values in figure["sides"].items():
                if unit == "requests/s":
                    shown = ", ".join(f"{v:,.0f}" for v in values)
                    lines.append(f"- {side}: {shown} requests/s")
                else:
                    lines.append(f"- {side}: " + ", ".join(f"{v:,.2f}" for v in values))
        for name, value in (figure.get("details") or {}).items():
            if name == "cores_used":
                lines += _cores_used(value)
            elif name != "read":
                lines.append(f"- {name.replace('_', ' ')}: {value}")
        if figure.get("note"):
            lines.append(f"- note: {figure['note']}")
        lines.append("")
        if figure["met"] is not True and key in ACCOUNTS:
            lines += ["**What limits it, and what was tried.** " + ACCOUNTS[key].strip(), ""]
    lines += ["## Reproducing", "", REPRODUCE.strip(), ""]
    path.write_text("\n".join(lines))


def _cores_used(sides: dict[str, dict[str, Any]]) -> list[str]:
    """F9's CPU account: per side, the cores each part of the machine used."""
    lines = []
    for side, used in sides.items():
        parts = [f"{used['requests_per_second']:,} requests/s"]
        parts.append("workers " + " + ".join(f"{core:.2f}" for core in used["workers"]))
        parts += [
            f"{name} {used[name]:.2f}"
            for name in ("supervisor", "wrk", "softirq", "other", "idle")
            if name in used
        ]
        lines.append(f"- cores used, {side}: " + ", ".join(parts))
    return lines


def write_plot(path: Path, result: dict[str, Any]) -> None:
    """One bar per figure: the result as a share of its target (1.0 = target met exactly)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = _figures(result)
    names, shares, labels, colours = [], [], [], []
    for figure in figures:
        value = figure["value"]
        names.append(figure["id"])
        if value is None or figure["target"] is None:
            shares.append(0.0 if value is None else 1.0)
            labels.append("not measured" if value is None else _fmt(figure) + " (reported)")
            colours.append("#bbbbbb")
            continue
        if figure["target_op"] == ">=":
            share = value / figure["target"]
        elif figure["unit"] == "%":  # growth: anything at or below zero is as good as it gets
            share = figure["target"] / max(value, figure["target"] / 10)
        else:
            share = figure["target"] / max(value, 1e-9)
        shares.append(min(share, 3.0))
        labels.append(_fmt(figure).split(" (")[0])
        colours.append("#2a9d8f" if figure["met"] else "#e76f51")
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.5))
    positions = range(len(names))
    ax.barh(list(positions), shares, color=colours)
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_yticks(list(positions), names)
    ax.invert_yaxis()
    ax.set_xlabel("result ÷ target (right of the dashed line: target met; capped at 3)")
    ax.set_title(f"keyplane benchmarks ({result['mode']} mode, {result['machine']['cpus']} CPUs)")
    for position, share, label in zip(positions, shares, labels, strict=True):
        ax.text(share + 0.03, position, label, va="center", fontsize=8)
    ax.set_xlim(0, max(3.4, max(shares, default=1) + 0.6))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
