"""Build one-op .tflite models by hand, with exactly the quantization a test wants.

The converter chooses scales itself (it gives every CONCATENATION input the output's scale, for
example), so some kernel paths never appear in converted models. This helper writes the
FlatBuffer directly with the schema classes that ship with ai_edge_litert, so a test can run
LiteRT's reference kernel on any scales and zero points and compare tl.run_int8_tflite with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

_TYPES = {np.dtype(np.float32): schema.TensorType.FLOAT32, np.dtype(np.int8): schema.TensorType.INT8,
          np.dtype(np.int32): schema.TensorType.INT32, np.dtype(np.int64): schema.TensorType.INT64}


@dataclass
class T:
    """One tensor: shape, dtype, optional (scale, zero point), optional constant data."""

    shape: tuple
    dtype: type = np.int8
    scale: float | np.ndarray | None = None
    zero_point: int = 0
    data: np.ndarray | None = None


def single_op_model(op: str, inputs: list[T], outputs: list[T], options=None,
                    options_type: str | None = None) -> bytes:
    """A model with one ``op`` (a BuiltinOperator name); non-constant inputs become its inputs."""
    tensors, buffers = [], [schema.BufferT()]
    for i, t in enumerate([*inputs, *outputs]):
        tt = schema.TensorT()
        tt.shape = list(t.shape)
        tt.type = _TYPES[np.dtype(t.dtype)]
        tt.name = f"t{i}"
        if t.scale is not None:
            q = schema.QuantizationParametersT()
            scales = np.atleast_1d(np.asarray(t.scale, dtype=np.float32))
            q.scale = [float(v) for v in scales]  # one, or one per channel along axis 0
            q.zeroPoint = [int(t.zero_point)] * len(scales)
            q.quantizedDimension = 0
            tt.quantization = q
        if t.data is not None:
            b = schema.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(t.data, dtype=t.dtype).tobytes(), np.uint8)
            buffers.append(b)
            tt.buffer = len(buffers) - 1
        else:
            tt.buffer = 0
        tensors.append(tt)
    code = schema.OperatorCodeT()
    code.builtinCode = getattr(schema.BuiltinOperator, op)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    operator = schema.OperatorT()
    operator.opcodeIndex = 0
    operator.inputs = list(range(len(inputs)))
    operator.outputs = list(range(len(inputs), len(inputs) + len(outputs)))
    if options is not None:
        operator.builtinOptionsType = getattr(schema.BuiltinOptions, options_type)
        operator.builtinOptions = options
    graph = schema.SubGraphT()
    graph.tensors = tensors
    graph.inputs = [i for i, t in enumerate(inputs) if t.data is None]
    graph.outputs = operator.outputs
    graph.operators = [operator]
    model = schema.ModelT()
    model.version = 3
    model.operatorCodes = [code]
    model.subgraphs = [graph]
    model.buffers = buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
