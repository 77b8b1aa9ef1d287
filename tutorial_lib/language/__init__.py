"""Pretrained transformers at 8, 4 and fewer bits (lesson 10): the bundled MiniLM and
SmolLM2 models and the text (``llm``), GGUF's blocks (``gguf_blocks``), weight-only
quantization with RTN, AWQ and GPTQ (``weight_only``) and LoRA on a quantized base (``lora``).

May import: ``tutorial_lib.core``, ``tutorial_lib.course`` and this folder (and PyTorch and
transformers, which the language models need).
"""
