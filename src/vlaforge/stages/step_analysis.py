"""The step_analysis stage: compare policies from their rollout results (STEP, intervals, letters, report)."""

from __future__ import annotations

from vlaforge import storage
from vlaforge.analysis.run import run_analysis


def run(result_uris: list[str], extra_result_uris: str, out_dir: str, report_path: str,
        tables_path: str, alpha: float = 0.05) -> dict[str, float]:
    """Analyse ``result_uris`` plus the comma-separated ``extra_result_uris``, write everything to
    ``out_dir``, and copy the HTML report and the Markdown tables to their artifacts."""
    uris = list(result_uris) + [u.strip() for u in extra_result_uris.split(",") if u.strip()]
    metrics = run_analysis(uris, out_dir, alpha=alpha)
    storage.write_bytes(report_path, storage.read_bytes(storage.join(out_dir, "report.html")))
    storage.write_bytes(tables_path, storage.read_bytes(storage.join(out_dir, "tables.md")))
    return metrics
