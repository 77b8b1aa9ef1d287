"""Measuring on top of the bridges: speed and benchmarks (``speed``, ``bench``,
``sweep_bench``, ``tflite_bench``, ``torch_bench``; run as ``python -m tutorial_lib.bench``) and
per-layer debugging of a broken int8 model against its float twin (``debug``, lesson 11).

May import: every layer below, the bridges included; only the checkers sit above it.
"""
