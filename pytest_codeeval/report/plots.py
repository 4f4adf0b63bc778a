"""PNG plots of a comparison (matplotlib, Agg backend: no display needed).

- heatmap: primary score per model x dataset;
- throughput: tokens/s per model (over all its cases);
- score vs speed: each model's mean score against its tokens/s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .comparison import _speed, model_label


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless CI and xdist workers
    import matplotlib.pyplot as plt

    return plt


def write_plots(comparison: dict[str, Any], out_dir: Path, stem: str) -> dict[str, Path]:
    """Writes the three plots; returns {"heatmap"|"throughput"|"score_vs_speed": path}."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    multi = len(comparison["presets"]) > 1
    cases = [c for c in comparison["cases"] if c["status"] != "error" and c.get("score") is not None]
    models = list(dict.fromkeys(model_label(c, multi) for c in comparison["cases"]))
    datasets = list(dict.fromkeys(c["dataset"] for c in comparison["cases"]))
    paths: dict[str, Path] = {}

    grid = [[float("nan")] * len(datasets) for _ in models]
    for c in cases:
        grid[models.index(model_label(c, multi))][datasets.index(c["dataset"])] = 100 * c["score"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(datasets), 1.2 + 0.6 * len(models)))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(datasets)), datasets, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), models)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, "—" if v != v else f"{v:.0f}", ha="center", va="center",
                    color="white" if v != v or v < 60 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, label="score (%)")
    ax.set_title("Primary score per model × dataset")
    fig.tight_layout()
    paths["heatmap"] = _save(fig, plt, out_dir / f"{stem}_heatmap.png")

    speed = _speed(comparison["cases"], multi)
    fig, ax = plt.subplots(figsize=(2 + 0.8 * max(1, len(speed)), 3.2))
    names = sorted(speed, key=lambda m: -speed[m])
    ax.bar(range(len(names)), [speed[m] for m in names], color="#4c72b0")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("generated tokens / s")
    ax.set_title("Throughput per model" + ("" if names else " (no timed generation)"))
    fig.tight_layout()
    paths["throughput"] = _save(fig, plt, out_dir / f"{stem}_throughput.png")

    means = {r["model"]: r["mean_score"] for r in comparison["rankings"]}
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for m in means:
        if m in speed:
            ax.scatter(speed[m], 100 * means[m], s=40)
            ax.annotate(m, (speed[m], 100 * means[m]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("generated tokens / s")
    ax.set_ylabel("mean score (%)")
    ax.set_title("Score against speed")
    fig.tight_layout()
    paths["score_vs_speed"] = _save(fig, plt, out_dir / f"{stem}_score_vs_speed.png")
    return paths


def _save(fig: Any, plt: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
