"""KFP component: cut a fanned-out stage's work into slices, one complete override list per slice."""

from kfp import dsl

from vlaforge.kube.images import image


@dsl.component(base_image=image("sim"), install_kfp_package=False)
def plan_slices(section: str, preset: str, overrides: str, width: int) -> list:
    """The slices a `dsl.ParallelFor` runs the stage over: sim_eval by (task, episode range), record_demos by
    (task, seed range). Each item is the stage's overrides with the slice's tasks and range appended.

    Args:
        section: The fanned-out stage's preset section: `sim_eval` or `demos`.
        preset: Preset name or YAML path.
        overrides: `key=value` lines overriding the section (the stage's own overrides).
        width: Number of slices (pods); below 1 or above the number of items is an error naming `<section>_slices`.
    """
    from vlaforge.stages.plan_slices import run

    return run(section, preset, overrides, width)
