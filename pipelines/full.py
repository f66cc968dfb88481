"""The full vlaforge DAG: tokenize -> llm_pretrain (later stages join as they land).

Every stage takes the preset name and its own overrides, so changing one stage's parameters
changes only that task's cache key: upstream tasks are served from the cache.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Model

from components.llm_pretrain.component import llm_pretrain
from components.tokenize.component import tokenize

PIPELINE_NAME = "vlaforge-full"
STAGE_SECTIONS = {"tokenize": "tokenize", "llm_pretrain": "llm"}


@dsl.pipeline(name=PIPELINE_NAME, description="Text -> LLM -> VLM -> VLA -> simulation -> STEP comparison.")
def full_pipeline(preset: str = "tiny", tokenize_overrides: str = "",
                  llm_overrides: str = "") -> NamedTuple("Outputs", llm=Model):
    """Train a VLA policy end to end and compare it with baselines.

    Args:
        preset: Preset name (tiny, 11m, 100m, 410m, 1b, metaworld4) or YAML path.
        tokenize_overrides: `key=value` lines for the tokenize section (e.g. `corpus=s3://bucket/text/`).
        llm_overrides: `key=value` lines for the llm section (e.g. `train.max_steps=2000`).
    """
    tok = tokenize(preset=preset, overrides=tokenize_overrides).set_display_name("tokenize")
    llm = llm_pretrain(preset=preset, overrides=llm_overrides,
                       dataset=tok.outputs["dataset"]).set_display_name("llm-pretrain")
    return NamedTuple("Outputs", llm=Model)(llm=llm.outputs["model"])
