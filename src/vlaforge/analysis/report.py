"""Writing the analysis: CSV and Markdown tables, PNG plots, episode strips, one self-contained HTML report,
metrics."""

from __future__ import annotations

import base64
import csv
import datetime
import html
import io
import json
import logging
import math

from vlaforge import __version__, storage
from vlaforge.analysis.episodes import EpisodeVideo
from vlaforge.analysis.guarantee import describe
from vlaforge.analysis.plots import aggregate_plot, task_plot
from vlaforge.analysis.study import BALANCED, Analysis
from vlaforge.analysis.summary import CONFIDENCE
from vlaforge.sim.video import media_html

log = logging.getLogger(__name__)

Table = tuple[list[str], list[list]]


def _num(value, digits: int):
    return "" if value is None else round(float(value), digits)


def task_table(a: Analysis, digits: int = 6) -> Table:
    head = ["task", "model", "completed", "crashed", "n", "successes", "success_pct", "ci90_low_pct",
            "ci90_high_pct", "avg_dur_s", "pending", "letters"]
    rows = []
    for r in a.rows:
        low, high = r.ci
        rows.append([r.task, r.model, r.completed, r.crashed, r.total, r.successes, _num(r.pct, digits),
                     _num(100 * low, digits), _num(100 * high, digits), _num(r.avg_dur, digits), r.pending,
                     a.letters.get(r.task, {}).get(r.model, "")])
    return head, rows


def aggregate_table(a: Analysis, digits: int = 6) -> Table:
    head = ["model", "balanced_n", "balanced_successes", "balanced_pct", "ci90_low_pct", "ci90_high_pct",
            "letters", "unweighted_n", "unweighted_successes", "unweighted_pct", "unweighted_ci90_low_pct",
            "unweighted_ci90_high_pct", "crashed"]
    rows = []
    for b, u in sorted(zip(a.balanced, a.unweighted), key=lambda bu: (-bu[0].rate, bu[0].model)):
        (bl, bh), (ul, uh) = b.ci, u.ci
        rows.append([b.model, b.total, b.successes, _num(b.pct, digits), _num(100 * bl, digits),
                     _num(100 * bh, digits), a.letters.get(BALANCED, {}).get(b.model, ""), u.total, u.successes,
                     _num(u.pct, digits), _num(100 * ul, digits), _num(100 * uh, digits), u.crashed])
    return head, rows


def pair_table(a: Analysis, digits: int = 6) -> Table:
    head = ["scope", "policy0", "policy1", "pairs", "test", "alpha_pair", "decision", "decided_at", "significant"]
    rows = [[p.scope, p.model0, p.model1, p.n, p.test, f"{p.alpha:.{digits}g}", p.decision,
             "" if p.decided_at is None else p.decided_at, "yes" if p.significant else "no"]
            for scope in [BALANCED, *a.tasks] for p in a.pairs.get(scope, [])]
    return head, rows


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table[0])
    writer.writerows(table[1])
    return buf.getvalue()


def to_markdown(table: Table) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|")
    head, rows = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_html_table(table: Table, highlight: str | None = None) -> str:
    head, rows = table
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        cls = ' class="sig"' if highlight and row[head.index(highlight)] == "yes" else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def markdown_report(a: Analysis, title: str) -> str:
    parts = [f"# {title}", "", _intro(a), "", describe(a.guarantee, a.alpha), ""]
    parts += [f"> **Warning:** {w}" for w in a.warnings] + ([""] if a.warnings else [])
    if a.balanced:
        parts += ["## Aggregate", "", to_markdown(_display(aggregate_table(a, 1)))]
    parts += ["## Per task", "", to_markdown(_display(task_table(a, 1))),
              "## Pairwise decisions", "", to_markdown(pair_table(a, 3))]
    return "\n".join(parts)


def _display(table: Table) -> Table:
    """Short headers for reading (CSV keeps the machine-friendly ones)."""
    return [h.replace("_pct", " %").replace("_", " ") for h in table[0]], table[1]


def _intro(a: Analysis) -> str:
    return (f"{len(a.models)} models x {len(a.tasks)} tasks, budget {a.budget} episodes per (task, model); "
            f"family-wise alpha {a.alpha} with Bonferroni correction; STEP (n_max <= 500) or Lai test; "
            f"intervals are {int(CONFIDENCE * 100)}% Clopper-Pearson; models sharing a letter are not "
            f"significantly different. Crashed episodes count as failures: n = completed + crashed episodes, "
            f"and success rates, intervals and tests are over n. Aggregate over {len(a.common)} common tasks "
            f"(balanced: equal episodes per task; unweighted: all their episodes).")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}
td:first-child,td:nth-child(2){text-align:left}tr.sig td{background:#eef7ee}
.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:8px 12px;margin:8px 0}
.meta{color:#555;font-size:13px}.guarantee{font-size:13px;font-weight:600}img{max-width:100%;border:1px solid #eee}
figure.episode{margin:8px 0}figure.episode img,figure.episode video{image-rendering:pixelated;vertical-align:top;
margin-right:6px}figcaption{font-size:13px;color:#333}h3{font-size:15px;margin-bottom:4px}
"""


def _png(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def episodes_html(episodes: list[EpisodeVideo]) -> list[str]:
    """The Episodes section: per task, a strip of frames and the video of each shown episode."""
    if not episodes:
        return ["<h2>Episodes</h2>", '<p class="meta">No episode videos were recorded with these results '
                "(sim_eval records the first videos_per_task episodes of each task).</p>"]
    out = ["<h2>Episodes</h2>", '<p class="meta">The first recorded episodes of each (model, task): frames '
           "from start to end, left to right, then the video.</p>"]
    for task in sorted({e.task for e in episodes}):
        out.append(f"<h3>{html.escape(task)}</h3>")
        out += [f'<figure class="episode">{_png(e.strip, e.caption)}{media_html(e.fmt, e.video, 128)}'
                f"<figcaption>{html.escape(e.caption)}</figcaption></figure>" for e in episodes if e.task == task]
    return out


def html_report(a: Analysis, title: str, plots: dict[str, bytes], sources: list[str],
                episodes: list[EpisodeVideo] | None = None) -> str:
    def img(name: str, alt: str) -> str:
        return _png(plots[name], alt)

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">{html.escape(_intro(a))}</p>',
            f'<p class="guarantee">{html.escape(describe(a.guarantee, a.alpha))}</p>',
            f'<p class="meta">Results: {html.escape(", ".join(sources))}. Generated {when} by vlaforge '
            f"{__version__}.</p>"]
    body += [f'<div class="warn">{html.escape(w)}</div>' for w in a.warnings]
    if a.balanced:
        body += ["<h2>Aggregate</h2>", to_html_table(_display(aggregate_table(a, 1))),
                 img("plot_aggregate.png", "aggregate success rates")]
    body += ["<h2>Per task</h2>", img("plot_tasks.png", "success rates per task"),
             to_html_table(_display(task_table(a, 1))),
             *episodes_html(episodes or []),
             "<h2>Pairwise decisions</h2>",
             "<p class=\"meta\">policy0 vs policy1, cut to the shorter sequence; decisions other than "
             "'fail to decide' are significant (highlighted).</p>",
             to_html_table(pair_table(a, 3), highlight="significant")]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_outputs(a: Analysis, metrics: dict[str, float], out_dir: str, title: str = "Policy comparison",
                  sources: list[str] | None = None, episodes: list[EpisodeVideo] | None = None) -> dict[str, str]:
    """Write every output file into ``out_dir`` (each atomically), the episode strips under ``episodes/``;
    returns {name: uri}."""
    plots = {"plot_tasks.png": task_plot(a.rows, a.models, a.tasks, a.letters)}
    if a.balanced:
        plots["plot_aggregate.png"] = aggregate_plot(a.balanced, a.unweighted, a.models,
                                                     a.letters.get(BALANCED, {}), len(a.common))
    files: dict[str, bytes | str] = dict(plots)
    files["per_task.csv"] = to_csv(task_table(a))
    files["per_task.md"] = to_markdown(_display(task_table(a, 1)))
    files["pairwise.csv"] = to_csv(pair_table(a))
    files["pairwise.md"] = to_markdown(pair_table(a, 3))
    if a.balanced:
        files["aggregate.csv"] = to_csv(aggregate_table(a))
        files["aggregate.md"] = to_markdown(_display(aggregate_table(a, 1)))
    files["tables.md"] = markdown_report(a, title)
    files["metrics.json"] = json.dumps({k: v for k, v in metrics.items() if math.isfinite(v)}, indent=2)
    files["report.html"] = html_report(a, title, plots, sources or [], episodes)
    files.update({e.strip_path: e.strip for e in episodes or []})
    written = {}
    for name, data in files.items():
        uri = storage.join(out_dir, name)
        if isinstance(data, str):
            storage.write_text(uri, data)
        else:
            storage.write_bytes(uri, data)
        written[name] = uri
    log.info("wrote %d files to %s", len(written), out_dir)
    return written
