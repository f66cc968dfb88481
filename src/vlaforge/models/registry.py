"""Backbones and action-expert heads by name: ``vla.backbone`` kinds and ``expert.head`` values.

A class registers itself with a decorator (the ``@register_model`` idea)::

    @register_head("mlp")
    class MLPActionHead(nn.Module): ...

and its module is named in the registry's ``modules``, which a lookup imports first, so a name
resolves without its caller importing every implementation (the Hugging Face one pulls in
``transformers``). Adding a backbone or a head: decorate the class, list its module below.

A backbone class gives :func:`vlaforge.models.vla.load_backbone` and the policy bundle
``load_artifact(uri, freeze) -> (backbone, config)`` (a stage's output folder),
``save_bundle_files(out_uri)`` and ``from_bundle(uri, config)``, besides the features the VLA
reads (``hidden_size``, ``num_layers``, ``image_token_count``, ``action_features``). A head class
is built as ``Head(cfg, cond_dim, proprio_dim, action_dim, n_proprio, chunk, n_image_tokens, views)``
and gives ``condition(states, batch)`` and ``forward(cond, proprio, noisy, t)``.
"""

from __future__ import annotations

import importlib


class Registry:
    """Classes by name; ``modules`` are imported before a lookup so that their classes register."""

    def __init__(self, what: str, modules: tuple[str, ...]):
        self.what, self.modules = what, modules
        self._classes: dict[str, type] = {}

    def register(self, name: str):
        def decorate(cls: type) -> type:
            if self._classes.get(name, cls) is not cls:
                raise ValueError(f"{self.what} '{name}' is already registered by {self._classes[name].__qualname__}")
            self._classes[name] = cls
            return cls
        return decorate

    def names(self) -> list[str]:
        for module in self.modules:
            importlib.import_module(module)
        return sorted(self._classes)

    def get(self, name: str) -> type:
        known = self.names()
        if name not in self._classes:
            raise ValueError(f"unknown {self.what} {name!r}; known: {', '.join(known)}")
        return self._classes[name]


BACKBONES = Registry("backbone", ("vlaforge.models.vlm_backbone", "vlaforge.models.hf_vlm"))
HEADS = Registry("expert head", ("vlaforge.models.heads",))
register_backbone = BACKBONES.register
register_head = HEADS.register
