"""The one training stack shared by LLM, VLM and VLA stages."""
