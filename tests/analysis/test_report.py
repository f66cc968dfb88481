"""End to end: a synthetic 3 models x 4 tasks x 200 episodes layout -> tables, plots, HTML report.

The HTML is opened in headless Chromium: no console errors, every inlined image decodes, and a
screenshot is taken (kept under the test's tmp folder for a person to look at).
"""

import csv
import json
import re
import subprocess

import numpy as np
import pytest
from analysis_util import episode, write_results
from PIL import Image

from vlaforge.analysis import run_analysis
from vlaforge.analysis.synthetic import write_results as write_synthetic
from vlaforge.cli import main

CHROMIUM = "/usr/bin/chromium"
RATES = {"expert": {"Reach": 0.95, "Push": 0.9, "PickPlace": 0.85, "DrawerOpen": 0.9},
         "vla": {"Reach": 0.7, "Push": 0.5, "PickPlace": 0.3, "DrawerOpen": 0.8},
         "random": {"Reach": 0.1, "Push": 0.05, "PickPlace": 0.0, "DrawerOpen": 0.2}}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    write_synthetic(str(root), RATES, episodes=200, seed=3)
    out = tmp_path_factory.mktemp("report")
    metrics = run_analysis([str(root)], str(out))
    return root, out, metrics


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_tables_and_metrics(report_dir):
    root, out, metrics = report_dir
    rows = _csv(out / "per_task.csv")
    assert len(rows) == 12
    for row in rows:
        results = json.loads(next(root.glob(f"{row['model']}/{row['task']}/rollouts/*/results.json")).read_text())
        wins = sum(e["is_success"] for e in results["evaluations"])
        assert int(row["completed"]) == 200 and int(row["successes"]) == wins
        assert float(row["ci90_low_pct"]) <= float(row["success_pct"]) <= float(row["ci90_high_pct"])
    # Clear differences: the expert beats the random policy on every task, so they never share a letter.
    for task in RATES["expert"]:
        letters = {r["model"]: r["letters"] for r in rows if r["task"] == task}
        assert not set(letters["expert"]) & set(letters["random"])
    aggregate = {r["model"]: r for r in _csv(out / "aggregate.csv")}
    assert {m: r["letters"] for m, r in aggregate.items()} == {"expert": "a", "vla": "b", "random": "c"}
    assert int(aggregate["vla"]["balanced_n"]) == 800
    assert metrics["models"] == 3 and metrics["common_tasks"] == 4 and metrics["significant_pairs"] == 3
    assert metrics["expert.balanced_pct"] == pytest.approx(float(aggregate["expert"]["balanced_pct"]))
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    pairs = _csv(out / "pairwise.csv")
    assert len(pairs) == 3 * 5
    assert {p["test"] for p in pairs if p["scope"] == "balanced aggregate"} == {"Lai"}
    assert {p["test"] for p in pairs if p["scope"] != "balanced aggregate"} == {"STEP"}
    tables = (out / "tables.md").read_text()
    assert "## Aggregate" in tables and "| Reach | expert | 200 | 0 | 200 |" in tables
    assert "Guarantee: two-sided" in tables and "Crashed episodes count as failures" in tables


def test_html_is_self_contained(report_dir):
    _, out, _ = report_dir
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing to fetch


def test_html_opens_in_headless_chromium(report_dir, tmp_path):
    _, out, _ = report_dir
    probe = tmp_path / "probe.html"
    script = ('<script>window.addEventListener("load",()=>{document.body.setAttribute("data-images",'
              '[...document.images].map(i=>i.naturalWidth).join(","))})</script></body>')
    probe.write_text((out / "report.html").read_text().replace("</body>", script))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile1'}", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    widths = re.search(r'data-images="([^"]*)"', dom.stdout).group(1).split(",")
    assert len(widths) == 2 and all(int(w) > 100 for w in widths), widths
    assert "Pairwise decisions" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1400,2400",
                    f"--screenshot={shot}", (out / "report.html").as_uri()], capture_output=True, timeout=120,
                   check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1400) and pixels.std() > 10  # not a blank page


def test_excluded_task_warning_and_pending_rows(tmp_path, caplog):
    write_results(tmp_path / "r", "a/Reach/rollouts/t0/results.json",
                  [episode("Reach", i, s) for i, s in enumerate(["success", "failure", "success"])], budget=10)
    write_results(tmp_path / "r", "a/Push/rollouts/t0/results.json", [episode("Push", 0, "pending")], budget=10)
    write_results(tmp_path / "r", "b/Reach/rollouts/t0/results.json",
                  [episode("Reach", i, s) for i, s in enumerate(["failure", "crashed"])], budget=10)
    metrics = run_analysis([str(tmp_path / "r")], str(tmp_path / "out"))
    assert "excluded from the aggregate" in caplog.text and "Push" in caplog.text
    assert metrics["common_tasks"] == 1
    rows = {(r["task"], r["model"]): r for r in _csv(tmp_path / "out" / "per_task.csv")}
    assert rows[("Push", "a")]["pending"] == "1" and rows[("Push", "a")]["completed"] == "0"
    assert rows[("Reach", "b")]["crashed"] == "1"
    assert "excluded from the aggregate" in (tmp_path / "out" / "report.html").read_text()


def test_cli_analyze(tmp_path, capsys):
    write_synthetic(str(tmp_path / "r"), {"a": {"reach": 0.9}, "b": {"reach": 0.2}}, episodes=20, seed=1)
    rename = tmp_path / "names.yaml"
    rename.write_text("models: {a: Alpha}\n")
    code = main(["analyze", str(tmp_path / "r"), "--out", str(tmp_path / "out"), "--rename", str(rename),
                 "--guarantee", "per-direction"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["Alpha.balanced_pct"] > 50
    assert "Guarantee: per direction" in (tmp_path / "out" / "report.html").read_text()
    assert "Guarantee: per direction" in (tmp_path / "out" / "tables.md").read_text()
    assert main(["analyze", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    assert "missing: nothing there (expected rollout results" in capsys.readouterr().err


def test_s3_output(tmp_path, s3_bucket):
    from vlaforge import storage

    write_synthetic(str(tmp_path / "r"), {"a": {"Reach": 0.9}, "b": {"Reach": 0.2}}, episodes=20, seed=1)
    run_analysis([str(tmp_path / "r")], f"{s3_bucket}/analysis")
    assert "report.html" in storage.listdir(f"{s3_bucket}/analysis")
    assert storage.read_text(f"{s3_bucket}/analysis/report.html").startswith("<!DOCTYPE html>")
