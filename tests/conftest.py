"""Test-wide settings."""

import os

# tensorflow-model-optimization needs Keras 2: whichever test imports TensorFlow first, it must
# find the legacy Keras switch already set (tutorial_lib.tflite_bridge sets it too).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
