"""Success-rate plots: Beta(1 + s, 1 + n - s) posterior, 90 % Clopper-Pearson interval and letters."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import beta  # noqa: E402

from vlaforge.analysis.summary import Summary  # noqa: E402

_GRID = np.linspace(0.0, 1.0, 201)


def _colors(models: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


def _panel(ax, title: str, rows: list[Summary], models: list[str], letters: dict[str, str],
           colors: dict[str, tuple], markers: dict[str, float] | None = None) -> None:
    by_model = {r.model: r for r in rows}
    xs, pct, err = [], [], [[], []]
    for i, model in enumerate(models):
        row = by_model.get(model)
        if row is None or row.total == 0:
            ax.text(i, 3, "n/a", ha="center", va="bottom", fontsize=7, color="0.4")
            continue
        density = beta.pdf(_GRID, 1 + row.successes, 1 + row.total - row.successes)
        width = 0.38 * density / density.max()
        ax.fill_betweenx(100 * _GRID, i - width, i + width, color=colors[model], alpha=0.35, lw=0)
        low, high = row.ci
        xs.append(i)
        pct.append(row.pct)
        err[0].append(row.pct - 100 * low)
        err[1].append(100 * high - row.pct)
        ax.text(i, min(100 * high + 2, 101), letters.get(model, ""), ha="center", va="bottom", fontsize=9,
                fontweight="bold")
    if xs:
        ax.errorbar(xs, pct, yerr=err, fmt="o", color="black", ms=4, capsize=3, lw=1.2)
    if markers:
        shown = [(i, markers[m]) for i, m in enumerate(models) if m in markers]
        ax.plot([i for i, _ in shown], [v for _, v in shown], marker="x", color="0.3", ms=6, ls="none")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, 112)
    ax.set_xlim(-0.6, len(models) - 0.4)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, rotation=35, ha="right", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def task_plot(rows: list[Summary], models: list[str], tasks: list[str], letters: dict[str, dict[str, str]]) -> bytes:
    """One panel per task (PNG bytes)."""
    cols = min(4, max(len(tasks), 1))
    nrows = math.ceil(len(tasks) / cols) if tasks else 1
    width = max(2.2, 0.45 * len(models) + 1.2)
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * width, nrows * 2.9 + 0.6), squeeze=False)
    colors = _colors(models)
    for ax, task in zip(axes.flat, tasks):
        _panel(ax, task, [r for r in rows if r.task == task], models, letters.get(task, {}), colors)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("success %", fontsize=8)
    fig.suptitle("Success rate per task: posterior (shaded), 90% Clopper-Pearson interval, letters", fontsize=10)
    # Fixed margins (inches) for titles and rotated model names: tight_layout costs seconds on big grids.
    fig_w, fig_h = fig.get_size_inches()
    fig.subplots_adjust(left=0.6 / fig_w, right=1 - 0.15 / fig_w, top=1 - 0.8 / fig_h, bottom=1.0 / fig_h,
                        hspace=0.6, wspace=0.45 / width)
    return _png(fig)


def aggregate_plot(balanced: list[Summary], unweighted: list[Summary], models: list[str],
                   letters: dict[str, str], n_tasks: int) -> bytes:
    """The balanced aggregate with the unweighted rate marked by x (PNG bytes)."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(models) + 2), 3.6))
    _panel(ax, f"Balanced aggregate over {n_tasks} common tasks (x = unweighted)", balanced, models, letters,
           _colors(models), markers={r.model: r.pct for r in unweighted if r.total})
    ax.set_ylabel("success %", fontsize=8)
    fig.tight_layout()
    return _png(fig)
