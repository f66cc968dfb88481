"""Load rollout results (``[<eval_set>/]<model>/<Task>/rollouts/<timestamp>/results.json``), local or s3://.

Every rule of the results format is enforced and each violation raises :class:`ResultsError` naming
the file(s): a missing or inconsistent ``max_sample_size_per_model``; two files of one rollouts folder
holding the same (task, scenario_index); a duplicate (task, model, scenario_index) anywhere else; more
completed episodes than the budget; malformed JSON or fields. Task names in snake_case are normalised
to PascalCase. Several roots merge into one :class:`ResultSet`.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections import defaultdict
from dataclasses import dataclass, field

import yaml

from vlaforge import storage

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
ROLLOUTS_DIR = "rollouts"


class ResultsError(ValueError):
    """Rollout results break a rule of the format; the message names the file(s)."""


@dataclass(frozen=True)
class Episode:
    task: str
    model: str
    scenario_index: int
    is_success: bool | None
    is_pending: bool
    total_time: float | None
    source: str

    @property
    def status(self) -> str:
        """``success``, ``failure``, ``pending`` or ``crashed``."""
        if self.is_success is None:
            return "pending" if self.is_pending else "crashed"
        return "success" if self.is_success else "failure"


@dataclass
class ResultSet:
    """Episodes of every (task, model), and the per-model episode budget shared by all files."""

    budget: int
    episodes: dict[tuple[str, str], list[Episode]] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return sorted({m for _, m in self.episodes})

    @property
    def tasks(self) -> list[str]:
        return sorted({t for t, _ in self.episodes})

    def get(self, task: str, model: str) -> list[Episode]:
        """Episodes of (task, model) sorted by scenario index (empty when none)."""
        return self.episodes.get((task, model), [])

    def outcomes(self, task: str, model: str, crashed_as_failure: bool = False) -> list[bool]:
        """Completed outcomes of (task, model) in scenario-index order; with ``crashed_as_failure``, crashed
        episodes are failures in their place."""
        return [bool(e.is_success) for e in self.get(task, model)
                if e.is_success is not None or crashed_as_failure and e.status == "crashed"]

    def crashes(self) -> dict[tuple[str, str], list[Episode]]:
        """The crashed episodes of every (task, model) that has any."""
        found = {key: [e for e in episodes if e.status == "crashed"] for key, episodes in self.episodes.items()}
        return {key: crashed for key, crashed in found.items() if crashed}


def normalise_task(name: str) -> str:
    """``put_mug_on_saucer`` -> ``PutMugOnSaucer``; PascalCase names are kept."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def find_results(root: str) -> list[tuple[str, str, str]]:
    """Every results file under ``root``: (uri, model, task folder), sorted; an eval_set level is skipped.

    Raises :class:`ResultsError` for a results file at a depth that fits neither layout and when the
    root holds none at all.
    """
    if not storage.exists(root):
        raise FileNotFoundError(f"results root not found: {root}")
    fs, base = storage.filesystem(root)
    base = base.rstrip("/")
    paths = sorted(p for p in fs.find(base) if posixpath.basename(p) == RESULTS_FILE)
    found = []
    for path in paths:
        rel = posixpath.relpath(path, base).split("/")
        uri = storage.join(root, *rel)
        if len(rel) == 5 and rel[2] == ROLLOUTS_DIR:
            found.append((uri, rel[0], rel[1]))
        elif len(rel) == 6 and rel[3] == ROLLOUTS_DIR:
            found.append((uri, rel[1], rel[2]))
        else:
            raise ResultsError(f"{uri}: results file outside the layout "
                               "[<eval_set>/]<model>/<Task>/rollouts/<timestamp>/results.json")
    if not found:
        raise ResultsError(f"{root}: no {RESULTS_FILE} found (expected "
                           "[<eval_set>/]<model>/<Task>/rollouts/<timestamp>/results.json)")
    return found


def _field(entry: dict, name: str, types: tuple, uri: str, i: int, required: bool = True):
    if name not in entry:
        if required:
            raise ResultsError(f"{uri}: evaluations[{i}] lacks '{name}'")
        return None
    value = entry[name]
    if value is not None and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
        raise ResultsError(f"{uri}: evaluations[{i}].{name} has the wrong type: {value!r}")
    return value


def parse_results_file(uri: str, text: str, model: str, folder_task: str) -> tuple[int, list[Episode]]:
    """The budget and the episodes of one results file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultsError(f"{uri}: not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ResultsError(f"{uri}: top level must be an object")
    budget = data.get("max_sample_size_per_model")
    if budget is None:
        raise ResultsError(f"{uri}: missing 'max_sample_size_per_model'")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ResultsError(f"{uri}: 'max_sample_size_per_model' must be a positive integer, got {budget!r}")
    evaluations = data.get("evaluations")
    if not isinstance(evaluations, list):
        raise ResultsError(f"{uri}: 'evaluations' must be a list")
    episodes = []
    for i, entry in enumerate(evaluations):
        if not isinstance(entry, dict):
            raise ResultsError(f"{uri}: evaluations[{i}] must be an object")
        skill = _field(entry, "skill_type", (str,), uri, i, required=False) or folder_task
        index = _field(entry, "scenario_index", (int,), uri, i)
        if index is None or index < 0:
            raise ResultsError(f"{uri}: evaluations[{i}].scenario_index must be a non-negative integer")
        success = _field(entry, "is_success", (bool,), uri, i)
        pending = _field(entry, "is_pending", (bool,), uri, i, required=False) or False
        duration = _field(entry, "total_time", (int, float), uri, i, required=False)
        episodes.append(Episode(normalise_task(skill), model, index, success, pending,
                                None if duration is None else float(duration), uri))
    return budget, episodes


def load_results(roots: list[str] | str) -> ResultSet:
    """Load and merge the results under every root; see the module docstring for the rules."""
    if isinstance(roots, str):
        roots = [roots]
    if not roots:
        raise ResultsError("no results roots given")
    budget_source: tuple[int, str] | None = None
    seen: dict[tuple[str, str, int], Episode] = {}
    by_pair: dict[tuple[str, str], list[Episode]] = defaultdict(list)
    files = [f for root in roots for f in find_results(root)]
    for uri, model, folder_task in files:
        budget, episodes = parse_results_file(uri, storage.read_text(uri), model, folder_task)
        if budget_source is None:
            budget_source = (budget, uri)
        elif budget != budget_source[0]:
            raise ResultsError(f"{uri}: max_sample_size_per_model={budget} differs from "
                               f"{budget_source[0]} in {budget_source[1]}")
        folder = posixpath.dirname(posixpath.dirname(uri))
        for ep in episodes:
            key = (ep.task, ep.model, ep.scenario_index)
            if key in seen:
                other = seen[key].source
                if other == uri:
                    raise ResultsError(f"{uri}: scenario_index {ep.scenario_index} of task {ep.task} "
                                       "appears twice in the file")
                same_folder = posixpath.dirname(posixpath.dirname(other)) == folder
                what = "files of one rollouts folder hold the same" if same_folder else "duplicate"
                raise ResultsError(f"{uri}: {what} (task, model, scenario_index) = "
                                   f"({ep.task}, {ep.model}, {ep.scenario_index}); also in {other}")
            seen[key] = ep
            by_pair[(ep.task, ep.model)].append(ep)
    assert budget_source is not None
    budget = budget_source[0]
    result = ResultSet(budget)
    for key in sorted(by_pair):
        episodes = sorted(by_pair[key], key=lambda e: e.scenario_index)
        completed = [e for e in episodes if e.is_success is not None]
        if len(completed) > budget:
            sources = sorted({e.source for e in completed})
            raise ResultsError(f"{', '.join(sources)}: {len(completed)} completed episodes for task {key[0]}, "
                               f"model {key[1]} exceed max_sample_size_per_model={budget}")
        result.episodes[key] = episodes
    log.info("loaded %d episodes of %d models x %d tasks from %d files (budget %d)", len(seen),
             len(result.models), len(result.tasks), len(files), budget)
    return result


def load_renames(uri: str) -> dict[str, dict[str, str]]:
    """A rename file (YAML or JSON): ``{models: {old: new}, tasks: {old: new}}``, both optional."""
    try:
        data = yaml.safe_load(storage.read_text(uri)) or {}
    except yaml.YAMLError as err:
        raise ResultsError(f"{uri}: invalid YAML/JSON: {err}") from err
    if not isinstance(data, dict) or set(data) - {"models", "tasks"}:
        raise ResultsError(f"{uri}: a rename file maps 'models' and/or 'tasks' to {{old: new}} mappings")
    out = {}
    for kind in ("models", "tasks"):
        mapping = data.get(kind) or {}
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ResultsError(f"{uri}: '{kind}' must map names to display names")
        out[kind] = {str(k): v for k, v in mapping.items()}
    return out


def apply_renames(results: ResultSet, renames: dict[str, dict[str, str]], source: str = "rename file") -> ResultSet:
    """A copy of ``results`` with display names; two names mapped onto one is an error."""
    model_names = renames.get("models", {})
    task_names = {normalise_task(k): v for k, v in renames.get("tasks", {}).items()}
    models = {m: model_names.get(m, m) for m in results.models}
    tasks = {t: task_names.get(t, t) for t in results.tasks}
    for kind, given, mapping in (("models", model_names, models), ("tasks", task_names, tasks)):
        unknown = sorted(set(given) - set(mapping))
        if unknown:
            log.warning("%s: %s not in the results: %s", source, kind, ", ".join(unknown))
        if len(set(mapping.values())) != len(mapping):
            raise ResultsError(f"{source}: two {kind} get the same display name: {mapping}")
    out = ResultSet(results.budget)
    for (task, model), episodes in results.episodes.items():
        out.episodes[(tasks[task], models[model])] = [
            Episode(tasks[task], models[model], e.scenario_index, e.is_success, e.is_pending, e.total_time,
                    e.source) for e in episodes]
    return out


def parse_range(text: str) -> range:
    """``"start:end"`` (end exclusive) as a range."""
    try:
        start, end = (int(v) for v in text.split(":"))
    except ValueError as err:
        raise ValueError(f"episode range '{text}' must look like start:end") from err
    if start < 0 or end <= start:
        raise ValueError(f"episode range '{text}' must satisfy 0 <= start < end")
    return range(start, end)


def check_episode_range(request: str | range, existing: list[int] | list[range] | str, budget: int) -> range:
    """Refuse a new evaluation range that overlaps ``existing`` indices or exceeds the budget.

    ``existing`` holds scenario indices, ranges or ``start:end`` strings. Returns the requested range.
    """
    req = parse_range(request) if isinstance(request, str) else request
    if isinstance(existing, str):
        existing = [existing]
    taken: set[int] = set()
    for item in existing:
        if isinstance(item, str):
            taken.update(parse_range(item))
        elif isinstance(item, range):
            taken.update(item)
        else:
            taken.add(int(item))
    overlap = sorted(taken.intersection(req))
    if overlap:
        raise ValueError(f"episode range {req.start}:{req.stop} is overlapping existing episodes "
                         f"(e.g. {overlap[0]}); choose indices from {max(taken) + 1}")
    if req.stop > budget or len(taken) + len(req) > budget:
        raise ValueError(f"episode range {req.start}:{req.stop} exceeds budget max_sample_size_per_model={budget}")
    return req
