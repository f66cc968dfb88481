"""The analysis behind the step_analysis stage and `vlaforge analyze`: results in; tables, plots, report and
headline metrics out."""

from __future__ import annotations

from vlaforge.analysis.episodes import collect_episodes
from vlaforge.analysis.report import write_outputs
from vlaforge.analysis.results import apply_renames, load_renames, load_results
from vlaforge.analysis.study import analyze, headline_metrics


def run_analysis(result_uris: list[str] | str, out_dir: str, rename_uri: str | None = None,
                 alpha: float = 0.05, seed: int = 0, title: str = "Policy comparison") -> dict[str, float]:
    """Load every results root, compare the models, write tables, plots, strips of the recorded episodes and
    ``report.html`` to ``out_dir``.

    Returns the headline metrics (also written to ``out_dir/metrics.json``).
    """
    uris = [result_uris] if isinstance(result_uris, str) else list(result_uris)
    results = load_results(uris)
    if rename_uri:
        results = apply_renames(results, load_renames(rename_uri), rename_uri)
    analysis = analyze(results, alpha, seed)
    metrics = headline_metrics(analysis)
    write_outputs(analysis, metrics, out_dir, title=title, sources=uris, episodes=collect_episodes(results))
    return metrics
