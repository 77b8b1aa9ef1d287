"""The framework bridges: the course's models and quantization in PyTorch and in
TensorFlow/LiteRT.

PyTorch: ``torch_model`` (the networks, training, evaluation), ``torch_quant`` (eager and
PT2E int8, engines and lowering), ``torch_bridge`` (both under one name, as the lessons use
them), ``qat`` (fake quantization with the straight-through estimator), ``torch_compress``
(pruning in PyTorch). TensorFlow and LiteRT: ``tflite_bridge`` (Keras models, the converter,
the interpreter), ``tf_fake_quant`` (TensorFlow's fake-quant op), ``keras_compress`` (tfmot's
pruning and clustering).

May import: every layer below (``core``, ``course``, ``compression``, ``language``) and this
folder; the bridges build the course's models from ``tutorial_lib.course.models``.
"""
