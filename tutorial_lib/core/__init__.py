"""The numpy core: what the lessons teach, in plain numpy, with no framework.

Number formats (``formats``, lesson 01), affine quantization (``affine``, 02), observers,
per-channel and group-wise parameters and int4 packing (``observers``, ``groupwise``,
``packing``, 03), integer-only inference and the ``.tflite`` reader (``integer``,
``tflite_file``, 04, 07), error metrics and what 360 test images can resolve (``metrics``),
and cross-layer equalization (``equalize``, 11). ``_validate`` checks arguments for all of them.

May import: numpy, ml_dtypes (the small float formats) and this folder; ``tflite_file`` reads
``.tflite`` files with the flatbuffer classes that ship with ``ai_edge_litert``. No framework:
neither PyTorch nor TensorFlow. Everything else in ``tutorial_lib`` may import it.
"""
