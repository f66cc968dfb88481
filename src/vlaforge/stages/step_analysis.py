"""The step_analysis stage: compare policies from their rollout results (STEP, intervals, letters, report)."""

from __future__ import annotations

import dataclasses

from vlaforge import storage
from vlaforge.artifacts import check_input, check_output
from vlaforge.analysis.run import load_config, run_analysis


def run(result_uris: list[str], extra_result_uris: str, out_dir: str, report_path: str, tables_path: str,
        preset: str = "tiny", overrides: str | list[str] | None = None) -> dict[str, float]:
    """Analyse ``result_uris`` plus the comma-separated ``extra_result_uris`` with the ``step_analysis``
    section of ``preset`` + overrides, write everything to ``out_dir``, and copy the HTML report and the
    Markdown tables to their artifacts."""
    config = dataclasses.asdict(load_config(preset, overrides))
    uris = list(result_uris) + [u.strip() for u in extra_result_uris.split(",") if u.strip()]
    check_output(out_dir, "step_analysis")
    for uri in uris:
        check_input(uri, "rollouts", "step_analysis results")
    metrics = run_analysis(uris, out_dir, **config)
    storage.write_bytes(report_path, storage.read_bytes(storage.join(out_dir, "report.html")))
    storage.write_bytes(tables_path, storage.read_bytes(storage.join(out_dir, "tables.md")))
    return metrics
