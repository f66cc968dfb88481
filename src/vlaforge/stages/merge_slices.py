"""The merge_slices stage: the outputs of a fanned-out stage's slices written as the one artifact a
single run of that stage writes (sim_eval rollouts, record_demos episodes, caption_data shards, tokenize
shards, preprocess_robotics shards and stats.json), with its metrics."""

from __future__ import annotations

import json

from vlaforge import storage
from vlaforge.data.tokenize import pack_parts
from vlaforge.fanout import merge_episodes, merge_rollouts, merge_shards
from vlaforge.robotics.preprocess import write_parts
from vlaforge.sim.demos import REPORT, merge_reports, report_metrics
from vlaforge.sim.evaluate import flat_metrics, report
from vlaforge.stages.plan_slices import config


def run(section: str, preset: str, overrides: str | list[str], slice_uris: list[str], out_uri: str) -> dict:
    """The slices' outputs merged into ``out_uri``; returns the merged output's metrics."""
    cfg = config(section, preset, overrides)
    if section == "captions":
        return merge_shards(slice_uris, out_uri, "captions", cfg.samples_per_shard)
    if section == "tokenize":
        return pack_parts(cfg, slice_uris, out_uri)
    if section == "preprocess":
        return write_parts(cfg, slice_uris, out_uri)
    if section == "sim_eval":
        (model,) = merge_rollouts(slice_uris, out_uri)
        return flat_metrics(report(out_uri, model, cfg.tasks))
    merge_episodes(slice_uris, out_uri)
    reports = [json.loads(storage.read_text(storage.join(uri, REPORT))) for uri in slice_uris]
    return report_metrics(merge_reports(reports, cfg, out_uri))
