"""Read a .tflite file (a FlatBuffer) into plain Python: tensors, their quantization, operators.

Uses the schema classes that ship with ``ai_edge_litert`` (no TensorFlow import). The result is
what ``tl.run_int8_tflite`` executes and what the lessons print: for every tensor its shape,
dtype, scale(s), zero point(s) and, for constants, its data.

INT4 tensors (weights the converter stores in 4 bits, e.g. after QAT below 8 bits) are packed two
per byte, element ``2k`` in the low nibble of byte ``k`` and ``2k + 1`` in the high nibble, in two's
complement, with a zero nibble padding an odd count: the layout of TensorFlow's
``PackInt4ValuesDensely`` / ``UnpackDenseInt4IntoInt8`` (tensorflow/compiler/mlir/lite/utils/
low_bit_utils.cc), which is ``tl.packing``'s. They are read into int8 arrays with values in
[-8, 7]; ``Tensor.type_name`` keeps the file's own type ("INT4").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Tensor", "Operator", "Graph", "read", "read_all", "unpack_int4_buffer"]

_DTYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8,
           "INT64": np.int64, "INT16": np.int16, "INT8": np.int8, "BOOL": np.bool_,
           "INT4": np.int8}  # INT4: unpacked into int8 values in [-8, 7]


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    scale: float | np.ndarray | None = None  # one value, or one per channel
    zero_point: int | np.ndarray | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constants (weights, biases, shapes)
    type_name: str = ""  # the file's TensorType, e.g. "INT8" or "INT4" (dtype is then int8)


@dataclass
class Operator:
    name: str  # e.g. "CONV_2D"
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


def _names(enum_class) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def _options(schema, opts) -> dict:
    """Normalize the builtin options the course's kernels use."""
    if opts is None:
        return {}
    padding = _names(schema.Padding)
    activation = _names(schema.ActivationFunctionType)
    found = {}
    if hasattr(opts, "padding"):
        found["padding"] = padding[opts.padding]
    if hasattr(opts, "strideH"):
        found["stride"] = (opts.strideH, opts.strideW)
    if hasattr(opts, "dilationHFactor"):
        found["dilation"] = (opts.dilationHFactor, opts.dilationWFactor)
    if hasattr(opts, "filterHeight"):
        found["filter"] = (opts.filterHeight, opts.filterWidth)
    if hasattr(opts, "fusedActivationFunction"):
        found["fused_activation"] = activation[opts.fusedActivationFunction]
    if hasattr(opts, "keepNumDims"):
        found["keep_num_dims"] = bool(opts.keepNumDims)
    if hasattr(opts, "keepDims"):
        found["keep_dims"] = bool(opts.keepDims)
    if hasattr(opts, "depthMultiplier"):
        found["depth_multiplier"] = opts.depthMultiplier
    for attr, key in (("axis", "axis"), ("beta", "beta"), ("valuesCount", "values_count"),
                      ("numSplits", "num_splits"), ("beginMask", "begin_mask"),
                      ("endMask", "end_mask"), ("ellipsisMask", "ellipsis_mask"),
                      ("newAxisMask", "new_axis_mask"), ("shrinkAxisMask", "shrink_axis_mask"),
                      ("offset", "offset"), ("initSubgraphIndex", "init_subgraph_index")):
        if hasattr(opts, attr):
            found[key] = getattr(opts, attr)
    if hasattr(opts, "sharedName"):  # a resource variable's name (VAR_HANDLE)
        name = opts.sharedName
        found["shared_name"] = name.decode() if isinstance(name, bytes) else str(name or "")
    return found


def read(model_content: bytes) -> Graph:
    """Parse the first (main) subgraph of a .tflite model.

    Raises ValueError if the bytes are not a TFLite model.
    """
    return read_all(model_content)[0]


def read_all(model_content: bytes) -> list[Graph]:
    """Parse every subgraph of a .tflite model (the main one first; streaming models keep the
    initialisation of their state variables in a second one, run by CALL_ONCE)."""
    from ai_edge_litert import schema_py_generated as schema

    buf = bytes(model_content)
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError("these bytes are not a .tflite model (the file identifier 'TFL3' is missing).")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    return [_read_subgraph(schema, model, subgraph) for subgraph in model.subgraphs]


def _read_subgraph(schema, model, subgraph) -> Graph:
    types = _names(schema.TensorType)
    ops = _names(schema.BuiltinOperator)
    tensors = []
    for i, t in enumerate(subgraph.tensors):
        dtype = _DTYPES.get(types[t.type], None)
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else ()))
        tensor = Tensor(i, t.name.decode() if isinstance(t.name, bytes) else str(t.name), shape, dtype,
                        type_name=types[t.type])
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) > 0:
            scale = np.asarray(q.scale, dtype=np.float32)
            zero_point = np.asarray(q.zeroPoint, dtype=np.int64)
            tensor.scale = float(scale[0]) if scale.size == 1 else scale
            tensor.zero_point = int(zero_point[0]) if zero_point.size == 1 else zero_point
            tensor.quantized_dimension = int(q.quantizedDimension)
        raw = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        if raw is not None and len(raw) > 0 and types[t.type] == "INT4":
            tensor.data = unpack_int4_buffer(np.asarray(raw, dtype=np.uint8), shape)
        elif raw is not None and len(raw) > 0 and dtype is not None:
            tensor.data = np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes(), dtype=dtype).reshape(shape)
        tensors.append(tensor)
    operators = []
    for op in subgraph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        operators.append(Operator(ops[builtin], [int(i) for i in _list(op.inputs)],
                                  [int(i) for i in _list(op.outputs)],
                                  _options(schema, op.builtinOptions)))
    return Graph(tensors, operators, [int(i) for i in _list(subgraph.inputs)],
                 [int(i) for i in _list(subgraph.outputs)])


def unpack_int4_buffer(raw, shape: tuple[int, ...]) -> np.ndarray:
    """The int8 values of an INT4 tensor's buffer: two per byte, low nibble first, signed.

    >>> unpack_int4_buffer(np.array([0x21, 0xF8, 0x07], np.uint8), (5,)).tolist()
    [1, 2, -8, -1, 7]
    >>> unpack_int4_buffer(np.array([0x10, 0x32], np.uint8), (2, 2)).tolist()
    [[0, 1], [2, 3]]
    """
    from tutorial_lib.core.packing import unpack_int4

    count = int(np.prod(shape, dtype=np.int64))
    raw = np.asarray(raw, dtype=np.uint8).ravel()
    if len(raw) != (count + 1) // 2:
        raise ValueError(f"an INT4 tensor of shape {shape} takes {(count + 1) // 2} bytes, but its "
                         f"buffer has {len(raw)}: the file is damaged or not packed two per byte.")
    return unpack_int4(raw, count).reshape(shape)


def _list(values) -> list:
    """FlatBuffer vectors that are absent (an op or subgraph without inputs) read as None."""
    return [] if values is None else list(values)
