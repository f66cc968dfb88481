"""Tiny random-weight Hugging Face VLMs built from configs, for tests and offline pipeline runs.

Each family gets the real model and processor classes at toy sizes, a byte-level BPE tokenizer trained
on a few sentences with the family's special tokens, and a chat template in the family's format. The
folder written by :func:`build_tiny_hf_vlm` loads through ``from_pretrained`` exactly like a hub name.
"""

from __future__ import annotations

import tempfile

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (AutoModelForImageTextToText, Idefics3Config, PreTrainedTokenizerFast, Qwen2VLConfig,
                          Qwen3VLConfig)
from transformers.models.idefics3 import Idefics3ImageProcessorPil, Idefics3Processor
from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil, Qwen2VLProcessor
from transformers.models.qwen3_vl import Qwen3VLProcessor

from vlaforge import storage
from vlaforge.models.hf_processor import image_text_only

FAMILIES = ("qwen3_vl", "qwen2_vl", "idefics3")

TRAINING_TEXT = [
    "pick up the red block and place it on the green plate",
    "push the button, open the drawer, close the door",
    "a robot arm reaches for a blue cube on a wooden table",
    "a photo of a gripper holding a small yellow ball",
    "Describe the image. The scene shows two objects next to each other.",
]

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
QWEN_CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
             "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
             "{% else %}{{ c['text'] }}{% endif %}"
             "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

IDEFICS3_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>",
                     "<global-img>"]
IDEFICS3_CHAT = ("<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:{% for c in m['content'] %}"
                 "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
                 "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")


def bpe_tokenizer(specials: list[str], vocab_size: int, **roles: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on :data:`TRAINING_TEXT`; ``specials`` get the first ids."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **roles)


def text_config(vocab_size: int, hidden_size: int, num_layers: int, **extra) -> dict:
    return dict(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                num_hidden_layers=num_layers, num_attention_heads=2, num_key_value_heads=1,
                max_position_embeddings=1024, **extra)


def _qwen(family: str, hidden_size: int, num_layers: int, image_size: int):
    tok = bpe_tokenizer(QWEN_SPECIALS, 320, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    roles = dict(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    token_ids = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                     vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    head_dim = hidden_size // 2
    if family == "qwen3_vl":
        patch = 16
        rope = {"rope_type": "default", "mrope_section": [head_dim // 8, head_dim // 8 + head_dim // 16,
                                                          head_dim // 4 - head_dim // 16], "mrope_interleaved": True}
        config = Qwen3VLConfig(
            text_config=text_config(len(tok), hidden_size, num_layers, head_dim=head_dim, rope_scaling=rope, **roles),
            vision_config=dict(depth=2, hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_heads=2,
                               out_hidden_size=hidden_size, patch_size=patch, spatial_merge_size=2,
                               temporal_patch_size=2, num_position_embeddings=(image_size // patch) ** 2,
                               deepstack_visual_indexes=[0]),
            **token_ids)
        processor_cls = Qwen3VLProcessor
    else:
        patch = 14
        rope = {"type": "mrope", "mrope_section": [head_dim // 8, head_dim // 8, head_dim // 4]}
        config = Qwen2VLConfig(
            text_config=text_config(len(tok), hidden_size, num_layers, rope_scaling=rope, **roles),
            vision_config=dict(depth=1, embed_dim=hidden_size, hidden_size=hidden_size, num_heads=2, mlp_ratio=2,
                               patch_size=patch, spatial_merge_size=2, temporal_patch_size=2),
            **token_ids)
        processor_cls = Qwen2VLProcessor
    side = image_size // (2 * patch) * (2 * patch)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=side * side, max_pixels=side * side, patch_size=patch,
                                               merge_size=2, temporal_patch_size=2)
    processor = image_text_only(processor_cls)(image_processor=image_processor, tokenizer=tok, chat_template=QWEN_CHAT)
    return config, processor


def _idefics3(hidden_size: int, num_layers: int, image_size: int):
    tok = bpe_tokenizer(IDEFICS3_SPECIALS, 320, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                        pad_token="<|endoftext|>")
    patch, scale = 8, 2
    config = Idefics3Config(
        text_config=text_config(len(tok), hidden_size, num_layers, model_type="llama", bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=1,
                           num_attention_heads=2, image_size=image_size, patch_size=patch),
        scale_factor=scale, image_token_id=tok.convert_tokens_to_ids("<image>"))
    image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": image_size},
                                                max_image_size={"longest_edge": image_size})
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, chat_template=IDEFICS3_CHAT,
                                  image_seq_len=(image_size // patch) ** 2 // scale**2)
    return config, processor


def build_tiny_hf_vlm(out_uri: str, family: str = "qwen3_vl", hidden_size: int = 32, num_layers: int = 2,
                      image_size: int = 64, seed: int = 0) -> str:
    """Write a tiny random-weight ``family`` VLM (model + processor) to ``out_uri``; returns ``out_uri``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny HF VLM family {family!r}; choose one of {', '.join(FAMILIES)}")
    if hidden_size % 16:
        raise ValueError(f"hidden_size={hidden_size} must be a multiple of 16 (2 heads, rotary sections)")
    if image_size < 32 or image_size % 32:
        raise ValueError(f"image_size={image_size} must be a positive multiple of 32 (patches x merge size)")
    if family == "idefics3":
        config, processor = _idefics3(hidden_size, num_layers, image_size)
    else:
        config, processor = _qwen(family, hidden_size, num_layers, image_size)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    with tempfile.TemporaryDirectory(prefix="vlaforge-tiny-hf-") as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        storage.upload_dir(tmp, out_uri)
    return out_uri
