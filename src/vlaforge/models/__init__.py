"""Model code: the from-scratch LLM (:mod:`.llm`), ViT (:mod:`.vit`) and VLM (:mod:`.vlm`); Hugging Face VLMs
(:mod:`.hf_vlm`); the VLA (:mod:`.vla`) with its backbones (:mod:`.vlm_backbone`, :mod:`.hf_vlm`), action
heads (:mod:`.heads`) and flow matching (:mod:`.flow`); backbones and heads by name (:mod:`.registry`)."""
