"""Streaming, mergeable statistics of low-dimensional fields (``stats.json``).

Each column (one dimension of a field, or one (timestep, dimension) cell for the per-timestep
variants) keeps:

- count, mean and M2 in float64, updated batch-wise and combined with Chan et al.'s parallel
  formula, so merging worker or dataset partials gives the same mean/std (population std,
  ``ddof=0`` like ``numpy.std``) as one pass over all values, up to float64 rounding;
- exact min and max;
- a :class:`Histogram` on a power-of-two grid for the percentiles.

Percentile error bound: the histogram's bins have width ``w = 2**k`` and start at multiples of
``w``; ``k`` is the smallest exponent (not below ``MIN_EXPONENT``) whose grid covers all values seen
in at most ``bins`` bins. Coarsening by one exponent merges bin pairs exactly, so the histogram
after any order of updates and merges equals the histogram of all values on the final grid. The
estimate of an order statistic lies in the same bin as the true one, hence
``|estimate - numpy.percentile| <= w < 2 * (max - min) / (bins - 1)`` (or ``w = 2**MIN_EXPONENT`` for
near-constant columns; values beyond 2**30 in magnitude raise that floor so bin indices stay exact
in float64): 0.05% of the column's range with the default 4096 bins.

``stats.json`` maps each field to ``count``, ``mean``, ``std``, ``min``, ``max``,
``percentile_{1,2,5,95,98,99}`` (lists over the field's dimensions) and the same keys with a
``_per_timestep`` suffix (lists over window positions of lists over dimensions; the counts are per
position, since padded window steps are left out; a cell that only ever held padding is null).
"""

from __future__ import annotations

import io
import json
import math

import numpy as np

from vlaforge import storage

STATS_FILE = "stats.json"
PERCENTILES = (1, 2, 5, 95, 98, 99)
SUMMARY_KEYS = ("count", "mean", "std", "min", "max") + tuple(f"percentile_{p}" for p in PERCENTILES)
MIN_EXPONENT = -20  # finest bin width 2**-20 ~ 1e-6
_EXACT_INT_BITS = 50  # keep bin indices well inside float64's exact integer range


class Histogram:
    """Counts of values in bins ``[i * 2**k, (i + 1) * 2**k)`` for ``offset <= i < offset + len(counts)``."""

    def __init__(self, bins: int = 4096):
        if bins < 2:
            raise ValueError(f"a histogram needs at least 2 bins, got {bins}")
        self.bins = bins
        self.exponent: int | None = None
        self.offset = 0
        self.counts = np.zeros(0, np.int64)
        self.abs_max = 0.0

    def _span(self, exponent: int, lo: float, hi: float) -> int:
        w = 2.0 ** exponent
        return int(math.floor(hi / w) - math.floor(lo / w)) + 1

    def _coarsen(self, exponent: int) -> None:
        shift = exponent - self.exponent
        if shift <= 0 or not len(self.counts):
            self.exponent = max(self.exponent, exponent)
            return
        idx = np.arange(self.offset, self.offset + len(self.counts)) >> shift
        self.offset = int(idx[0])
        self.counts = np.bincount(idx - self.offset, weights=self.counts).astype(np.int64)
        self.exponent = exponent

    def _fit(self, lo: float, hi: float, abs_max: float) -> None:
        """Coarsen to the smallest exponent whose grid covers [lo, hi] (and what is stored) in ``bins``."""
        floor_exp = MIN_EXPONENT
        if abs_max > 0:
            floor_exp = max(floor_exp, math.frexp(abs_max)[1] - _EXACT_INT_BITS)
        exponent = max(floor_exp, self.exponent if self.exponent is not None else floor_exp)
        if self.exponent is not None and len(self.counts):
            w = 2.0 ** self.exponent
            lo = min(lo, self.offset * w)
            hi = max(hi, (self.offset + len(self.counts) - 1) * w)
        if hi > lo:  # jump close to the answer, then step: the span only shrinks as the exponent grows
            exponent = max(exponent, math.floor(math.log2((hi - lo) / self.bins)))
        while self._span(exponent, lo, hi) > self.bins:
            exponent += 1
        if self.exponent is None:
            self.exponent = exponent
        self._coarsen(exponent)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.float64).ravel()
        if not len(values):
            return
        lo, hi = float(values.min()), float(values.max())
        self.abs_max = max(self.abs_max, abs(lo), abs(hi))
        self._fit(lo, hi, self.abs_max)
        self._add_counts(np.floor(values / 2.0 ** self.exponent).astype(np.int64), None)

    def _add_counts(self, idx: np.ndarray, weights: np.ndarray | None) -> None:
        start = min(int(idx.min()), self.offset) if len(self.counts) else int(idx.min())
        end = max(int(idx.max()) + 1, self.offset + len(self.counts))
        counts = np.zeros(end - start, np.int64)
        counts[self.offset - start:self.offset - start + len(self.counts)] = self.counts
        counts += np.bincount(idx - start, weights=weights, minlength=len(counts)).astype(np.int64)
        self.offset, self.counts = start, counts

    def merge(self, other: Histogram) -> None:
        if other.exponent is None or not len(other.counts):
            return
        if self.bins != other.bins:
            raise ValueError(f"cannot merge histograms with {self.bins} and {other.bins} bins")
        other = other.copy()
        if self.exponent is None:
            self.exponent, self.offset, self.counts, self.abs_max = (
                other.exponent, other.offset, other.counts, other.abs_max)
            return
        common = max(self.exponent, other.exponent)
        self._coarsen(common)
        other._coarsen(common)
        self.abs_max = max(self.abs_max, other.abs_max)
        w = 2.0 ** common
        self._fit(other.offset * w, (other.offset + len(other.counts) - 1) * w, self.abs_max)
        other._coarsen(self.exponent)
        self._add_counts(np.arange(other.offset, other.offset + len(other.counts)), other.counts)

    def copy(self) -> Histogram:
        out = Histogram(self.bins)
        out.exponent, out.offset, out.counts, out.abs_max = self.exponent, self.offset, self.counts.copy(), self.abs_max
        return out

    @property
    def bin_width(self) -> float:
        return 2.0 ** self.exponent if self.exponent is not None else 0.0

    def percentiles(self, qs, vmin: float, vmax: float) -> list[float]:
        """``numpy.percentile`` (linear method) estimated from the bins, values uniform inside a bin."""
        n = int(self.counts.sum())
        if n == 0:
            return [math.nan] * len(qs)
        cum = np.cumsum(self.counts)
        w = self.bin_width

        def order_stat(rank: int) -> float:
            b = int(np.searchsorted(cum, rank, side="right"))
            before = cum[b - 1] if b else 0
            value = (self.offset + b + (rank - before + 0.5) / self.counts[b]) * w
            return min(max(value, vmin), vmax)

        out = []
        for q in qs:
            h = (n - 1) * q / 100.0
            lo_rank = int(math.floor(h))
            lo, hi = order_stat(lo_rank), order_stat(min(lo_rank + 1, n - 1))
            out.append(lo + (h - lo_rank) * (hi - lo))
        return out


class RunningStats:
    """Count, mean, std, min, max and histogram percentiles of ``columns`` columns, mergeable."""

    def __init__(self, columns: int, bins: int = 4096):
        self.columns = columns
        self.count = np.zeros(columns, np.int64)
        self.mean = np.zeros(columns)
        self.m2 = np.zeros(columns)
        self.min = np.full(columns, np.inf)
        self.max = np.full(columns, -np.inf)
        self.histograms = [Histogram(bins) for _ in range(columns)]

    def _combine(self, n_b, mean_b, m2_b) -> None:
        n_a = self.count
        n = n_a + n_b
        safe = np.maximum(n, 1)
        delta = mean_b - self.mean
        self.mean = np.where(n > 0, self.mean + delta * n_b / safe, 0.0)
        self.m2 = self.m2 + m2_b + delta ** 2 * n_a * n_b / safe
        self.count = n

    def update(self, x: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add rows ``x`` (N, columns); ``valid`` (N, columns) bool leaves out masked cells."""
        x = np.asarray(x, np.float64).reshape(-1, self.columns)
        valid = np.ones(x.shape, bool) if valid is None else np.broadcast_to(valid, x.shape)
        n_b = valid.sum(0)
        if not n_b.any():
            return
        mean_b = np.where(valid, x, 0.0).sum(0) / np.maximum(n_b, 1)
        m2_b = np.where(valid, (x - mean_b) ** 2, 0.0).sum(0)
        self._combine(n_b, mean_b, m2_b)
        self.min = np.minimum(self.min, np.where(valid, x, np.inf).min(0))
        self.max = np.maximum(self.max, np.where(valid, x, -np.inf).max(0))
        for c, hist in enumerate(self.histograms):
            hist.add(x[valid[:, c], c])

    def merge(self, other: RunningStats) -> None:
        if other.columns != self.columns:
            raise ValueError(f"cannot merge statistics of {other.columns} columns into {self.columns}")
        self._combine(other.count, other.mean, other.m2)
        self.min = np.minimum(self.min, other.min)
        self.max = np.maximum(self.max, other.max)
        for mine, theirs in zip(self.histograms, other.histograms):
            mine.merge(theirs)

    def summary(self) -> dict[str, np.ndarray]:
        """Arrays of shape (columns,) keyed as in ``stats.json``; NaN where a column saw no value."""
        seen = self.count > 0
        nan = np.full(self.columns, np.nan)
        out = {"count": self.count.copy(), "mean": np.where(seen, self.mean, nan),
               "std": np.where(seen, np.sqrt(self.m2 / np.maximum(self.count, 1)), nan),
               "min": np.where(seen, self.min, nan), "max": np.where(seen, self.max, nan)}
        cols = [h.percentiles(PERCENTILES, lo, hi) for h, lo, hi in zip(self.histograms, self.min, self.max)]
        for i, p in enumerate(PERCENTILES):
            out[f"percentile_{p}"] = np.array([c[i] for c in cols])
        return out

    def bin_widths(self) -> np.ndarray:
        return np.array([h.bin_width for h in self.histograms])


class FieldStats:
    """Statistics of one field (dim D) over all steps and per window position (T, D)."""

    def __init__(self, dim: int, window: int, bins: int = 4096):
        self.dim, self.window = dim, window
        self.overall = RunningStats(dim, bins)
        self.per_timestep = RunningStats(dim * window, bins)

    def update_steps(self, values: np.ndarray) -> None:
        """Values of every step of an episode, (steps, D)."""
        self.overall.update(values)

    def update_windows(self, windows: np.ndarray, valid: np.ndarray) -> None:
        """Sample windows (N, T, D) with their validity (N, T): padded steps are left out."""
        valid = np.repeat(np.asarray(valid, bool)[:, :, None], self.dim, axis=2)
        self.per_timestep.update(windows.reshape(len(windows), -1), valid.reshape(len(windows), -1))

    def merge(self, other: FieldStats) -> None:
        self.overall.merge(other.overall)
        self.per_timestep.merge(other.per_timestep)

    def to_dict(self) -> dict:
        """The ``stats.json`` entry; per-timestep cells no sample reached (always padding) are null."""
        if not self.overall.count.all():
            raise ValueError("statistics of a field that saw no values")
        out = {}
        for key, value in self.overall.summary().items():
            out[key] = int(value[0]) if key == "count" else value.tolist()
        for key, value in self.per_timestep.summary().items():
            cells = value.reshape(self.window, self.dim)
            out[f"{key}_per_timestep"] = (cells[:, 0].astype(int).tolist() if key == "count" else
                                          [[None if math.isnan(v) else v for v in row] for row in cells.tolist()])
        return out


def merge_all(parts: list[dict[str, FieldStats]]) -> dict[str, FieldStats]:
    """Merge per-worker/per-dataset partial statistics field by field (the first part is updated)."""
    merged = parts[0]
    for part in parts[1:]:
        if part.keys() != merged.keys():
            raise ValueError(f"cannot merge statistics of fields {sorted(part)} into {sorted(merged)}")
        for name, stats in part.items():
            merged[name].merge(stats)
    return merged


_NO_EXPONENT = -(2 ** 62)  # a histogram that saw no value yet


def _running_state(stats: RunningStats, prefix: str) -> dict[str, np.ndarray]:
    hists = stats.histograms
    return {f"{prefix}{key}": value for key, value in {
        "count": stats.count, "mean": stats.mean, "m2": stats.m2, "min": stats.min, "max": stats.max,
        "bins": np.array([h.bins for h in hists], np.int64),
        "exponent": np.array([_NO_EXPONENT if h.exponent is None else h.exponent for h in hists], np.int64),
        "offset": np.array([h.offset for h in hists], np.int64),
        "abs_max": np.array([h.abs_max for h in hists]),
        "lengths": np.array([len(h.counts) for h in hists], np.int64),
        "counts": np.concatenate([h.counts for h in hists]) if hists else np.zeros(0, np.int64)}.items()}


def _running_from_state(state: dict[str, np.ndarray], prefix: str) -> RunningStats:
    part = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    stats = RunningStats(len(part["count"]), int(part["bins"][0]) if len(part["bins"]) else 4096)
    stats.count, stats.mean, stats.m2, stats.min, stats.max = (part[k].copy() for k in ("count", "mean", "m2", "min", "max"))
    ends = np.cumsum(part["lengths"])
    for h, exponent, offset, abs_max, end, length in zip(stats.histograms, part["exponent"], part["offset"],
                                                          part["abs_max"], ends, part["lengths"]):
        h.exponent = None if exponent == _NO_EXPONENT else int(exponent)
        h.offset, h.abs_max, h.counts = int(offset), float(abs_max), part["counts"][end - length:end].copy()
    return stats


def save_partial(uri: str, fields: dict[str, FieldStats]) -> None:
    """Partial statistics (every count, moment and histogram bin, exactly) as an ``.npz`` file, for
    :func:`load_partial` and :func:`merge_all` elsewhere (e.g. the merge step of a fanned-out preprocess)."""
    arrays = {}
    for name, f in fields.items():
        arrays[f"{name}/shape"] = np.array([f.dim, f.window], np.int64)
        arrays.update(_running_state(f.overall, f"{name}/overall/"))
        arrays.update(_running_state(f.per_timestep, f"{name}/per_timestep/"))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    storage.write_bytes(uri, buffer.getvalue())


def load_partial(uri: str) -> dict[str, FieldStats]:
    """The statistics :func:`save_partial` wrote."""
    with np.load(io.BytesIO(storage.read_bytes(uri))) as npz:
        state = dict(npz)
    fields = {}
    for key in [k for k in state if k.endswith("/shape")]:  # in the order saved, the order of stats.json
        name = key[:-len("/shape")]
        dim, window = (int(v) for v in state[key])
        f = FieldStats(dim, window)
        f.overall = _running_from_state(state, f"{name}/overall/")
        f.per_timestep = _running_from_state(state, f"{name}/per_timestep/")
        fields[name] = f
    return fields


def write_stats(out_uri: str, fields: dict[str, FieldStats]) -> dict:
    stats = {name: f.to_dict() for name, f in fields.items()}
    storage.write_text(storage.join(out_uri, STATS_FILE), json.dumps(stats, indent=1))
    return stats


def read_stats(uri: str) -> dict:
    """``stats.json`` of a dataset folder (or the file itself)."""
    path = uri if uri.endswith(".json") else storage.join(uri, STATS_FILE)
    try:
        return json.loads(storage.read_text(path))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from err
