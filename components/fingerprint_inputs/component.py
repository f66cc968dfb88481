"""KFP component: content fingerprints of a stage's inputs given by URI, for the stage's cache key."""

from kfp import dsl

from vlaforge.kube.images import image


@dsl.component(base_image=image("analysis"), install_kfp_package=False)
def fingerprint_inputs(preset: str, section: str, overrides: str, fields: str = "", uris: str = "") -> str:
    """`<uri> <sha256>` lines over what the URIs hold now (object ETags, sizes and modification times, or
    a hash of local files). Run uncached; passed to the reading task so new data at the same URI re-runs it.

    Args:
        preset: Preset name or YAML path.
        section: The preset section holding `fields`, e.g. `tokenize`.
        overrides: `key=value` lines overriding the section (the reading stage's own overrides).
        fields: Comma-separated keys of the section naming inputs, e.g. `corpus`; values that are not
            locations (`builtin`, a hub model name) are left out.
        uris: More input URIs, separated by newlines, commas or spaces.
    """
    from vlaforge.stages.fingerprint_inputs import run

    return run(preset, section, overrides, fields, uris)
