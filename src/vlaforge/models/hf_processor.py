"""Loading a Hugging Face VLM's processor for image + text input only.

Processors of video-capable families (Qwen2/3-VL, SmolVLM2, ...) also load a video processor, which
transformers implements with torchvision only. vlaforge never feeds video, so those processors are
loaded without their video part: the same code then runs with or without torchvision, and a folder
saved on one machine loads on any other.
"""

from __future__ import annotations

from functools import cache

from transformers import AutoConfig
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
from transformers.processing_utils import ProcessorMixin

VIDEO = "video_processor"


@cache
def image_text_only(cls: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """``cls`` without its video processor (same class name, so saved folders name the real class)."""
    if VIDEO not in cls.get_attributes():
        return cls
    attributes = [a for a in cls.get_attributes() if a != VIDEO]
    return type(cls.__name__, (cls,), {"get_attributes": classmethod(lambda _: attributes),
                                       "__module__": cls.__module__})


def processor_class(name_or_path: str) -> type[ProcessorMixin]:
    """The processor class transformers pairs with the model at ``name_or_path``."""
    config = AutoConfig.from_pretrained(name_or_path)
    try:
        return PROCESSOR_MAPPING[type(config)]
    except KeyError:
        raise ValueError(f"{name_or_path}: model_type {config.model_type!r} has no processor in transformers; "
                         "it is not an image-text-to-text model vlaforge can load") from None


def load_processor(name_or_path: str) -> ProcessorMixin:
    """The image + text processor of the model at ``name_or_path`` (hub name or local folder)."""
    return image_text_only(processor_class(name_or_path)).from_pretrained(name_or_path)
