"""KFP component: image-caption shards rendered in the embedded simulator, or imported."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from vlaforge.kube.images import image


@dsl.component(base_image=image("sim"), install_kfp_package=False)
def caption_data(preset: str, overrides: str, captions: Output[Dataset], source_uri: str = "",
                 input_fingerprint: str = ""):
    """Render simulator scenes captioned from their true state (objects, colours, relative positions,
    task), or validate and copy an existing img2dataset-layout caption corpus.

    Args:
        preset: Preset name or YAML path; its `captions` section is used when rendering.
        overrides: `key=value` lines overriding the `captions` section, e.g. `scenes_per_task=200`.
        source_uri: Existing img2dataset-layout shards (local path or s3:// URI; a manifest.jsonl is
            optional) to import instead of rendering. Every sample must hold an image that decodes
            and a caption; errors name the shard and key.
        input_fingerprint: Content fingerprint of `source_uri` (fingerprint_inputs): not read here, it makes the
            task's cache key change when the data at the same URI does.
        captions: WebDataset shards (<key>.jpg, <key>.txt, <key>.json) plus manifest.jsonl.
    """
    import time

    from vlaforge.stages.caption_data import run

    started = time.perf_counter()
    summary = run(preset, overrides, captions.path, source_uri)
    captions.metadata.update({"kind": "image_captions", "num_samples": summary["num_samples"],
                              "num_shards": summary["num_shards"],
                              "wall_seconds": round(time.perf_counter() - started, 2)})
