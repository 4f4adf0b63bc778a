"""PNG plots of a comparison (matplotlib, Agg backend: no display needed).

- heatmap: primary score per model x dataset (always);
- throughput: tokens/s per model, only for models whose speed was measured
  (none for the model-free engines: then there is no plot, not empty bars);
- score vs speed: each ranked model's mean score against its tokens/s, only
  when some speed was measured.

Figures are sized from their content (cells of a fixed size, margins from
the longest label), so one model and thirty-six read alike; the canvas
grows around long names (``bbox_inches="tight"``) instead of cutting them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .ranking import measured_speed, model_label

CELL_W, CELL_H = 0.95, 0.34  # inches per heatmap cell
FONT = 8.5


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless CI and xdist workers
    import matplotlib.pyplot as plt

    return plt


def write_plots(comparison: dict[str, Any], out_dir: Path, stem: str) -> dict[str, Path]:
    """Writes the plots that have data; returns {"heatmap"|"throughput"|"score_vs_speed": path}."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in ("throughput", "score_vs_speed"):  # a rerun without speeds must not show an old run's plot
        (out_dir / f"{stem}_{old}.png").unlink(missing_ok=True)
    multi = len(comparison["presets"]) > 1
    paths = {"heatmap": heatmap(plt, comparison, multi, out_dir / f"{stem}_heatmap.png")}
    speed = measured_speed(comparison["cases"], multi)
    if speed:
        paths["throughput"] = throughput(plt, speed, out_dir / f"{stem}_throughput.png")
        means = {r["model"]: r["mean_score"] for r in comparison["rankings"] if r.get("mean_score") is not None
                 and r.get("rank") is not None and r["model"] in speed}
        if means:
            paths["score_vs_speed"] = score_vs_speed(plt, means, speed, out_dir / f"{stem}_score_vs_speed.png")
    return paths


def heatmap(plt: Any, comparison: dict[str, Any], multi: bool, path: Path) -> Path:
    import numpy as np

    cases = comparison["cases"]
    models = list(dict.fromkeys(model_label(c, multi) for c in cases))
    datasets = list(dict.fromkeys(c["dataset"] for c in cases))
    grid = np.full((len(models), len(datasets)), np.nan)
    errors = set()
    for c in cases:
        i, j = models.index(model_label(c, multi)), datasets.index(c["dataset"])
        if c["status"] == "error":
            errors.add((i, j))
        elif c.get("score") is not None:
            grid[i, j] = 100 * c["score"]
    fig, ax = plt.subplots(figsize=(0.6 + CELL_W * len(datasets), 0.5 + CELL_H * len(models)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#eeeeee")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(datasets)), datasets, rotation=35, ha="right", fontsize=FONT)
    ax.set_yticks(range(len(models)), models, fontsize=FONT)
    ax.tick_params(length=0)
    for i in range(len(models)):
        for j in range(len(datasets)):
            v = grid[i, j]
            text = "error" if (i, j) in errors else ("—" if v != v else f"{v:.0f}")
            dark = v != v or v < 60
            ax.text(j, i, text, ha="center", va="center", fontsize=FONT,
                    color=("#b00000" if (i, j) in errors else "#555555") if v != v else ("white" if dark else "black"))
    ax.set_xticks([x - 0.5 for x in range(1, len(datasets))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(models))], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title("Primary score (%) per model × dataset", fontsize=FONT + 1.5, loc="left")
    return _save(fig, plt, path)


def throughput(plt: Any, speed: dict[str, float], path: Path) -> Path:
    names = sorted(speed, key=lambda m: -speed[m])
    fig, ax = plt.subplots(figsize=(6.4, 0.7 + 0.28 * len(names)))
    ax.barh(range(len(names)), [speed[m] for m in names], color="#4c72b0", height=0.7)
    ax.set_yticks(range(len(names)), names, fontsize=FONT)
    ax.invert_yaxis()  # fastest on top
    top = max(speed.values())
    for i, m in enumerate(names):
        v = speed[m]
        ax.text(v + top * 0.01, i, f"{v:.1f}" if v < 100 else f"{v:.0f}", va="center", fontsize=FONT - 0.5)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("generated tokens / s (engine time)", fontsize=FONT)
    ax.tick_params(axis="x", labelsize=FONT)
    ax.set_title("Throughput per model (measured speeds only)", fontsize=FONT + 1.5, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _save(fig, plt, path)


def pareto(means: dict[str, float], speed: dict[str, float]) -> set[str]:
    """Models no other model beats on both score and speed."""
    return {m for m in means if not any(
        means[o] >= means[m] and speed[o] >= speed[m] and (means[o], speed[o]) != (means[m], speed[m]) for o in means)}


MAX_LABELS = 12  # beyond this many points, only the Pareto front is named (names would overlap)


def score_vs_speed(plt: Any, means: dict[str, float], speed: dict[str, float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    front = pareto(means, speed)
    named = set(means) if len(means) <= MAX_LABELS else front
    for m, score in means.items():
        on_front = m in front
        ax.scatter(speed[m], 100 * score, s=30 if on_front else 18, color="#c44e52" if on_front else "#4c72b0",
                   zorder=3 if on_front else 2)
    # Neighbours by speed get their names above and below in turn, so close points stay readable.
    for k, m in enumerate(sorted(named, key=lambda x: speed[x])):
        ax.annotate(m, (speed[m], 100 * means[m]), textcoords="offset points", xytext=(4, 4 if k % 2 == 0 else -10),
                    fontsize=FONT - 1.5)
    ax.set_xlabel("generated tokens / s (engine time)", fontsize=FONT)
    ax.set_ylabel("mean score (%) over the ranking's datasets", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.set_xlim(0, max(speed[m] for m in means) * 1.25)
    ax.set_ylim(0, 100)
    title = "Score against speed (red: no other model is both better and faster"
    title += ")" if named == set(means) else "; only those are named)"
    ax.set_title(title, fontsize=FONT, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return path
