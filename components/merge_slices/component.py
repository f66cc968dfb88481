"""KFP component: merge a fanned-out stage's slice outputs (dsl.Collected) into the stage's one artifact."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("sim"), install_kfp_package=False)
def merge_slices(section: str, preset: str, overrides: str, slices: Input[List[Dataset]],
                 merged: Output[Dataset], metrics: Output[Metrics]):
    """Write the slices' outputs as one run of the stage writes them, and log each slice's wall time.

    Args:
        section: The fanned-out stage's preset section: `sim_eval`, `demos`, `captions`, `tokenize` or `preprocess`.
        preset: Preset name or YAML path.
        overrides: `key=value` lines overriding the section (the stage's own overrides, without a slice's).
        slices: The slices' outputs, in plan order (sim_eval `results`, record_demos `demos`, caption_data `captions`,
            tokenize `dataset`, preprocess_robotics `robotics`).
        merged: sim_eval: one results.json per (model, task); record_demos: episodes.jsonl, episodes/,
            recording_report.json; caption_data: shards + manifest.jsonl; tokenize: tokenizer/, train/, val/,
            tokenize_stats.json; preprocess_robotics: train/, val/, stats.json, preprocessing_config.yaml, splits.json.
        metrics: The stage's metrics over the merged output, plus the slice count and the slowest slice's seconds.
    """
    from vlaforge.fanout import log_slice_times
    from vlaforge.kfp_io import write_metrics
    from vlaforge.stages.merge_slices import run

    times = log_slice_times(section, [float(s.metadata.get("wall_seconds", 0.0)) for s in slices])
    values = run(section, preset, overrides, [s.path for s in slices], merged.path)
    first = slices[0].metadata
    merged.metadata.update({key: first[key] for key in ("kind", "models") if key in first}, **times,
                           **{key: values[key] for key in ("vocab_size", "seq_len", "train_samples", "val_samples")
                              if key in values})
    write_metrics(metrics, {**values, "slices": times["slices"], "slowest_slice_seconds": times["slowest_slice_seconds"]})
