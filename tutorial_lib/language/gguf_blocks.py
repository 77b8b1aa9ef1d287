"""GGUF's block formats, read and written with numpy: ``Q4_1`` and ``Q8_0`` (llama.cpp's GGML).

A GGUF file stores a weight row as blocks of 32 consecutive values. Each block carries its own
float16 parameters followed by the packed codes:

- ``Q8_0`` (34 bytes): a float16 scale ``d``, then 32 int8 codes; ``x_hat = d * q``. That is
  symmetric int8 with one scale per group of 32: 8.5 bits per weight.
- ``Q4_1`` (20 bytes): a float16 scale ``d`` and a float16 minimum ``m``, then 16 bytes of
  4-bit codes ``q`` in 0..15; ``x_hat = d * q + m``. Byte ``j`` holds code ``j`` in its low
  nibble and code ``j + 16`` in its high nibble (not ``2j`` and ``2j + 1`` as
  ``tl.packing.pack_int4``). 5 bits per weight.

``Q4_1`` is asymmetric 4-bit quantization per group of 32 with one difference from
``tl.groupwise``: the offset is the block's minimum itself, stored as a float, instead of an
integer zero point, so the range ``[min, max]`` is not widened to contain 0 and 0 itself need
not be exact. The functions here follow llama.cpp's reference code (``ggml-quants.c``) and equal
the ``gguf`` package's numpy version bit for bit (tests/test_gguf_blocks.py).

On the CPU, llama.cpp does not multiply ``Q4_1`` weights with float activations: it quantizes
each activation row to ``Q8_1`` blocks (int8 codes, a float16 scale ``d`` and ``s = d * sum(q)``)
and runs an integer dot product per block (``ggml_vec_dot_q4_1_q8_1`` in ``ggml-cpu/quants.c``,
chosen by the ``vec_dot_type = GGML_TYPE_Q8_1`` of ``Q4_1``'s CPU type traits in ``ggml-cpu.c``):
weights 4 bits, activations 8 bits, W4A8. ``quantize_q8_1`` and ``dot_q4_1_q8_1`` do the same.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK_SIZE", "BLOCK_BYTES", "bits_per_weight", "unpack_q4_1", "dequantize_q4_1",
           "quantize_q4_1", "dequantize_q8_0", "quantize_q8_1", "dot_q4_1_q8_1"]

BLOCK_SIZE = 32  # values per block, for every format here
BLOCK_BYTES = {"Q4_1": 20, "Q8_0": 34}  # 2 float16 + 16 bytes of nibbles; 1 float16 + 32 int8


def bits_per_weight(kind: str) -> float:
    """Storage bits per weight of a block format, parameters included: ``8 * bytes / 32``.

    >>> bits_per_weight("Q4_1"), bits_per_weight("Q8_0")
    (5.0, 8.5)
    """
    if kind not in BLOCK_BYTES:
        raise ValueError(f"unknown block format {kind!r}; this module reads {sorted(BLOCK_BYTES)}.")
    return 8 * BLOCK_BYTES[kind] / BLOCK_SIZE


def _blocks(raw, kind: str) -> np.ndarray:
    """``raw`` (any shape whose last axis is whole blocks of bytes) as ``(blocks, bytes)``."""
    raw = np.asarray(raw)
    if raw.dtype != np.uint8:
        raise ValueError(f"raw must be the file's bytes as a uint8 array; got dtype {raw.dtype}.")
    size = BLOCK_BYTES[kind]
    if raw.ndim == 0 or raw.size == 0 or raw.shape[-1] % size:
        raise ValueError(
            f"a {kind} row is a whole number of {size}-byte blocks; got shape {raw.shape}. Pass "
            f"the tensor's bytes as stored (e.g. gguf.GGUFReader(path).tensors[i].data).")
    return raw.reshape(-1, size)


def unpack_q4_1(block) -> tuple[np.float32, np.float32, np.ndarray]:
    """One 20-byte ``Q4_1`` block as ``(d, m, q)``: float16 scale and minimum, 32 codes 0..15.

    >>> block = np.array([0, 60, 0, 188] + [0x10, 0xF2] + [0] * 14, np.uint8)
    >>> d, m, q = unpack_q4_1(block)  # 0x3C00 is float16 1.0, 0xBC00 is -1.0
    >>> float(d), float(m), q[[0, 1, 16, 17]].tolist()
    (1.0, -1.0, [0, 2, 1, 15])
    """
    b = _blocks(block, "Q4_1")
    if len(b) != 1:
        raise ValueError(f"pass one block of 20 bytes; got {len(b)} blocks. "
                         "Use dequantize_q4_1 for whole rows.")
    b = b[0]
    d, m = b[0:2].view(np.float16), b[2:4].view(np.float16)  # little-endian, as in the file
    nibbles = b[4:20]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4])  # low nibbles: codes 0-15; high: 16-31
    return np.float32(d[0]), np.float32(m[0]), q.astype(np.uint8)


def dequantize_q4_1(raw) -> np.ndarray:
    """Float32 values ``d * q + m`` of ``Q4_1`` bytes; the last axis shrinks from 20 to 32 per block.

    >>> block = np.array([0, 56, 0, 188] + [0x10, 0xF2] + [0] * 14, np.uint8)  # d=0.5, m=-1
    >>> dequantize_q4_1(block)[[0, 1, 2, 16, 17]].tolist()
    [-1.0, 0.0, -1.0, -0.5, 6.5]
    """
    raw = np.asarray(raw)
    b = _blocks(raw, "Q4_1")
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    m = b[:, 2:4].copy().view(np.float16).astype(np.float32)
    nibbles = b[:, 4:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32)
    x_hat = d * q + m
    return x_hat.reshape(*raw.shape[:-1], raw.shape[-1] // 20 * BLOCK_SIZE)


def quantize_q4_1(x) -> np.ndarray:
    """``Q4_1`` bytes of float32 values, as llama.cpp's reference quantizer writes them.

    Per block: ``d = (max - min) / 15``, ``q = trunc((x - min) / d + 0.5)`` clipped to 0..15
    (round half up on non-negative numbers), ``d`` and ``m = min`` stored as float16.

    >>> x = np.linspace(-1, 2, 32, dtype=np.float32)
    >>> raw = quantize_q4_1(x)
    >>> raw.shape, float(np.abs(dequantize_q4_1(raw) - x).max()) <= 0.2 / 2 + 1e-3
    ((20,), True)
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] % BLOCK_SIZE:
        raise ValueError(f"the last axis must be a multiple of {BLOCK_SIZE} values; got shape "
                         f"{x.shape}. Pad the row or choose another format.")
    if not np.all(np.isfinite(x)):
        raise ValueError("x holds NaN or inf: a block's minimum and scale would be meaningless.")
    blocks = x.reshape(-1, BLOCK_SIZE)
    lo = blocks.min(axis=1, keepdims=True)
    d = (blocks.max(axis=1, keepdims=True) - lo) / np.float32(15)
    with np.errstate(divide="ignore"):
        inv_d = np.where(d == 0, np.float32(0), np.float32(1) / d)
    q = np.trunc((blocks - lo) * inv_d + np.float32(0.5)).clip(0, 15).astype(np.uint8)
    nibbles = q[:, :16] | (q[:, 16:] << 4)
    raw = np.concatenate([d.astype(np.float16).view(np.uint8), lo.astype(np.float16).view(np.uint8),
                          nibbles], axis=1)
    return raw.reshape(*x.shape[:-1], x.shape[-1] // BLOCK_SIZE * 20)


def dequantize_q8_0(raw) -> np.ndarray:
    """Float32 values ``d * q`` of ``Q8_0`` bytes; the last axis shrinks from 34 to 32 per block.

    >>> block = np.array([0, 56] + [2, 254] + [0] * 30, np.uint8)  # d=0.5; codes 2 and -2
    >>> dequantize_q8_0(block)[:3].tolist()
    [1.0, -1.0, 0.0]
    """
    raw = np.asarray(raw)
    b = _blocks(raw, "Q8_0")
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    q = b[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(*raw.shape[:-1], raw.shape[-1] // 34 * BLOCK_SIZE)


def quantize_q8_1(x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activations as llama.cpp's CPU backend quantizes them for a ``Q4_1`` dot product.

    Per block of 32: ``d = max|x| / 127``, ``q = round(x / d)`` rounding halves away from zero
    (C's ``roundf``), and ``s = d * sum(q)``; ``d`` and ``s`` are stored as float16, the codes
    use the float32 ``d`` (``quantize_row_q8_1_ref``). Returns ``(d, s, q)``: float32 arrays of
    shape ``(blocks,)`` holding the float16 values, and int8 codes ``(blocks, 32)``.

    >>> d, s, q = quantize_q8_1(np.linspace(-1, 1, 32, dtype=np.float32))
    >>> round(float(d[0]) * 127, 3), q[0, [0, 15, 16, 31]].tolist(), float(s[0])
    (1.0, [-127, -4, 4, 127], 0.0)
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1 or x.size == 0 or x.size % BLOCK_SIZE:
        raise ValueError(f"x must be one row whose length is a multiple of {BLOCK_SIZE}; got "
                         f"shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("x holds NaN or inf.")
    blocks = x.reshape(-1, BLOCK_SIZE)
    d = np.abs(blocks).max(axis=1) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv_d = np.where(d == 0, np.float32(0), np.float32(1) / d)
    scaled = blocks * inv_d[:, None]
    q = (np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))).astype(np.int8)  # roundf
    s = d * q.astype(np.int32).sum(axis=1)
    return (d.astype(np.float16).astype(np.float32), s.astype(np.float16).astype(np.float32), q)


def dot_q4_1_q8_1(raw, x) -> np.ndarray:
    """``W @ x`` for ``Q4_1`` weight rows ``raw`` (out, 20 * blocks bytes), as llama.cpp's CPU does.

    ``x`` is quantized with :func:`quantize_q8_1`; then, for each block of 32,
    ``sum_j (d_w q_w[j] + m_w) (d_x q_x[j]) = d_w d_x * sum_j q_w[j] q_x[j] + m_w * s_x``:
    one integer dot product of 4-bit and 8-bit codes, and the weight block's minimum times the
    activation block's precomputed ``s``. Accumulated in float64 here (float32 in ggml).

    >>> w = np.linspace(-0.5, 1.0, 64, dtype=np.float32).reshape(1, 64)
    >>> x = np.ones(64, np.float32)
    >>> round(float(dot_q4_1_q8_1(quantize_q4_1(w), x)[0]), 2), float(w.sum())  # 4-bit weights
    (15.99, 16.0)
    """
    b = _blocks(raw, "Q4_1")
    raw = np.asarray(raw)
    d_x, s_x, q_x = quantize_q8_1(x)
    if raw.ndim != 2 or raw.shape[1] // 20 != len(d_x):
        raise ValueError(f"raw must be Q4_1 rows of {len(d_x)} blocks ({20 * len(d_x)} bytes) for "
                         f"x of {len(d_x) * BLOCK_SIZE} values; got shape {raw.shape}.")
    d_w = b[:, 0:2].copy().view(np.float16).astype(np.float64).reshape(raw.shape[0], -1)
    m_w = b[:, 2:4].copy().view(np.float16).astype(np.float64).reshape(raw.shape[0], -1)
    nibbles = b[:, 4:]
    q_w = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int32)
    q_w = q_w.reshape(raw.shape[0], len(d_x), BLOCK_SIZE)
    sum_i = np.einsum("obj,bj->ob", q_w, q_x.astype(np.int32))  # integers: exact
    return (d_w * d_x * sum_i + m_w * s_x).sum(axis=1).astype(np.float32)
