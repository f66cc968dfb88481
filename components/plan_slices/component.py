"""KFP component: cut a fanned-out stage's work into slices, one complete override list per slice."""

from kfp import dsl

from vlaforge.kube.images import image


@dsl.component(base_image=image("sim"), install_kfp_package=False)
def plan_slices(section: str, preset: str, overrides: str, width: int, source_uri: str = "") -> list:
    """The slices a `dsl.ParallelFor` runs the stage over: sim_eval by (task, episode range), record_demos and
    caption_data by (task, seed range), tokenize by groups of corpus files, preprocess_robotics by groups of
    episodes. Each item is the stage's overrides with the slice's tasks and range (or its `part="k/n"`) appended.

    Args:
        section: The fanned-out stage's preset section: `sim_eval`, `demos`, `captions`, `tokenize` or `preprocess`.
        preset: Preset name or YAML path.
        overrides: `key=value` lines overriding the section (the stage's own overrides).
        width: Number of slices (pods); below 1 or above the number of items is an error naming `<section>_slices`
            (preprocess: the slices check the upper bound once the episodes are recorded).
        source_uri: Data the stage imports instead of producing it (caption_data's `source_uri`): one slice.
    """
    from vlaforge.stages.plan_slices import run

    return run(section, preset, overrides, width, source_uri)
