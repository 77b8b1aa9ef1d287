"""Compression beyond quantization (lesson 09), in numpy: pruning masks and schedules
(``pruning``), weight clustering (``clustering``) and knowledge distillation's loss
(``distill``).

May import: ``tutorial_lib.core``, ``tutorial_lib.course`` and this folder.
"""
