"""The gate study's report: a table of mean ± sd per task and variant with the tests against
the full cell, a paragraph of what was found (next to what Greff et al. found), and box
plots of every run's metric (PNG).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lstmkit.train import files

__all__ = ["findings", "format_table", "plot_boxes"]

# Greff et al. 2017, section 5 (on TIMIT, IAM Online, JSB Chorales): removing the forget
# gate or the output activation hurt most; coupling the gates and removing the peepholes
# did not hurt significantly.
GREFF_HURT, GREFF_HARMLESS = ("NFG", "NOAF"), ("CIFG", "NP")


def _num(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if math.isfinite(value) else "-"


def _p(value: float) -> str:
    return "-" if math.isnan(value) else ("<1e-4" if value < 1e-4 else f"{value:.4f}")


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table, one line per (task, variant)."""
    header = ["task", "metric", "variant", "n", "mean ± sd", "median", "diff", "p Welch"]
    header += ["p Holm", "p MWU", "verdict"]
    lines = [header]
    for r in rows:
        notes = [f"{r['diverged']} diverged"] * bool(r["diverged"])
        notes += [f"{r['failed']} failed"] * bool(r.get("failed"))
        n = f"{r['n']}" + (f" ({', '.join(notes)})" if notes else "")
        arrow = "↓" if r["lower_is_better"] else "↑"
        lines.append(
            [r["task"], f"{r['metric']} {arrow}", r["variant"], n]
            + [f"{_num(r['mean'])} ± {_num(r['sd'], 2)}", _num(r["median"])]
            + [_num(r["diff"], 3), _p(r["p_welch"]), _p(r["p_holm"]), _p(r["p_mannwhitney"])]
            + [r["verdict"]]
        )
    widths = [max(len(line[j]) for line in lines) for j in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def _names(rows: Sequence[dict[str, Any]], verdict: str) -> str:
    chosen = [r for r in rows if r["verdict"] == verdict]
    chosen.sort(key=lambda r: -abs(r["diff"]))
    return ", ".join(f"{r['variant']} ({r['diff']:+.3g})" for r in chosen) or "none"


def findings(rows: Sequence[dict[str, Any]], base: str = "vanilla", alpha: float = 0.05) -> str:
    """What the numbers say, a paragraph per task: which variants did significantly worse or
    better than ``base`` (Holm-corrected Welch p < ``alpha``; the mean difference in
    brackets, largest first), and where that agrees with Greff et al. or not."""
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        by_name = {r["variant"]: r for r in mine}
        if base not in by_name:
            out.append(f"{task}: no {base} runs, nothing to compare with.")
            continue
        b = by_name[base]
        direction = "lower" if b["lower_is_better"] else "higher"
        runs = sorted({r["n"] for r in mine})
        text = (
            f"{task} ({b['metric']}, {direction} is better; {'/'.join(map(str, runs))} "
            f"finished runs per variant; {base} {_num(b['mean'])} ± {_num(b['sd'], 2)}): "
            f"significantly worse than {base}: {_names(mine, 'worse')}; "
            f"significantly better: {_names(mine, 'better')}; "
            f"no significant difference: "
            + (", ".join(r["variant"] for r in mine if r["verdict"] == "same") or "none")
        )
        untested = [r["variant"] for r in mine if r["verdict"] == "untested"]
        if untested:
            text += f"; too few finished runs to test: {', '.join(untested)}"
        failed = [f"{r['variant']} ({r['failed']} of {r['n']})" for r in mine if r.get("failed")]
        if failed:
            text += f"; runs that ended no better than the memoryless baseline: {', '.join(failed)}"
        out.append(text + ". " + _against_greff(by_name) + _caution(b))
    tests = f"Welch's t-test against {base}, Holm-corrected per task, alpha = {alpha}."
    return "\n\n".join(out + [tests])


def _caution(b: dict[str, Any]) -> str:
    """A warning when the full cell did not beat the memoryless baseline: then the runs
    learned too little for their differences to say which parts of the cell matter."""
    base = b["baseline"]
    beaten = b["mean"] < base if b["lower_is_better"] else b["mean"] > base
    if math.isnan(base) or beaten:
        return ""
    return (
        f" Caution: {b['variant']} did not beat the memoryless baseline ({_num(base)}); the "
        "budget was too small for these differences to say which parts of the cell matter."
    )


def _against_greff(by_name: dict[str, dict[str, Any]]) -> str:
    """How a task's verdicts compare with Greff et al.'s."""
    agree: list[str] = []
    differ: list[str] = []
    for name in GREFF_HURT:
        if name in by_name:
            hurt = by_name[name]["verdict"] == "worse"
            said = "was significantly worse" if hurt else "was not significantly worse"
            (agree if hurt else differ).append(f"{name} {said}")
    for name in GREFF_HARMLESS:
        if name in by_name:
            same = by_name[name]["verdict"] in ("same", "better")
            said = "was not significantly worse" if same else "was significantly worse"
            (agree if same else differ).append(f"{name} {said}")
    if not agree and not differ:
        return ""
    parts = []
    if agree:
        parts.append(f"As in Greff et al.: {', '.join(agree)}.")
    if differ:
        parts.append(f"Unlike Greff et al. (NFG and NOAF hurt, CIFG and NP cost nothing): "
                     f"{', '.join(differ)}.")  # fmt: skip
    return " ".join(parts)


def plot_boxes(
    records: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], path: str | Path
) -> Path:
    """One panel per task: a box per variant over its finished runs, each run a dot; the
    base's box shaded, and a variant significantly different from it starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks) + 1, 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = [r for r in rows if r["task"] == task]
        names = [r["variant"] for r in mine]
        data = [
            [
                x["value"]
                for x in records
                if x["task"] == task and x["variant"] == n and not x["diverged"]
            ]
            for n in names
        ]
        boxes = ax.boxplot(data, patch_artist=True, widths=0.6)
        for patch, r in zip(boxes["boxes"], mine):
            patch.set_facecolor("0.75" if r["verdict"] == "base" else "white")
        for k, values in enumerate(data):
            ax.scatter([k + 1] * len(values), values, s=10, color="C0", alpha=0.6, zorder=3)
        labels = [
            n + ("*" if r["verdict"] in ("worse", "better") else "") for n, r in zip(names, mine)
        ]
        ax.set_xticks(range(1, len(names) + 1), labels, rotation=45)
        if math.isfinite(mine[0]["baseline"]):
            ax.axhline(mine[0]["baseline"], color="k", ls="--", lw=1, label="memoryless baseline")
            ax.legend(fontsize=8)
        arrow = "lower" if mine[0]["lower_is_better"] else "higher"
        ax.set_title(f"{task}: {mine[0]['metric']} ({arrow} is better)")
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("LSTM variants (* differs from vanilla: Welch, Holm-corrected)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    files.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
