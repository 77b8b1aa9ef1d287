"""Sub-byte storage: two 4-bit or four 2-bit integers in each byte.

numpy's smallest integer is one byte, so ``q`` from a 4-bit quantizer sits in an ``int8`` array
and takes twice the memory its bits need. Packing puts the values side by side inside bytes:

- int4: byte ``k`` holds value ``2k`` in its low nibble (bits 0-3) and value ``2k + 1`` in its
  high nibble (bits 4-7), as ONNX's INT4 type and torchao's ``pack_uint4`` (MX formats) do.
  Other kernels put the first value in the high nibble (torchao's tinygemm layout) or pair
  value ``j`` with ``j + 16`` (GGML's ``Q4_0``): a packed file is only readable by code that
  agrees on the order;
- int2: byte ``k`` holds values ``4k .. 4k + 3`` in bits 0-1, 2-3, 4-5 and 6-7.

Signed values are stored in two's complement (``-1`` is ``0b1111`` in 4 bits). An array whose
length is not a multiple of the values per byte is padded with zeros; ``unpack_*`` takes the
true length ``n`` to drop the padding. Arrays of any shape are packed in C order (``q.ravel()``):
keep the shape to restore it.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["pack_int4", "unpack_int4", "pack_int2", "unpack_int2"]


def _value_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def _pack(q, bits: int, signed: bool) -> np.ndarray:
    q = np.asarray(q)
    if q.size == 0:
        raise ValueError("q is empty: there is nothing to pack.")
    if not np.issubdtype(q.dtype, np.integer):
        raise ValueError(
            f"q must hold integers (the output of tl.quantize); got dtype {q.dtype}. "
            f"Quantize to a {bits}-bit range first, e.g. with tl.qrange({bits})."
        )
    lo, hi = _value_range(bits, signed)
    bad = (q < lo) | (q > hi)
    if np.any(bad):
        kind = "signed" if signed else "unsigned"
        raise ValueError(
            f"{int(bad.sum())} value(s) of q lie outside the {kind} {bits}-bit range [{lo}, {hi}] "
            f"(e.g. {q[bad].ravel()[0]}); packing would wrap them around. Clamp when you quantize "
            f"(quant_min={lo}, quant_max={hi})" + ("" if signed else " or pass signed=True") + "."
        )
    per_byte = 8 // bits
    flat = q.ravel().astype(np.int64) & (2**bits - 1)  # two's complement in the low bits
    flat = np.concatenate([flat, np.zeros(-len(flat) % per_byte, np.int64)])  # pad with zeros
    fields = flat.reshape(-1, per_byte) << (bits * np.arange(per_byte))  # first value lowest
    return fields.sum(axis=1).astype(np.uint8)


def _unpack(packed, n, bits: int, signed: bool) -> np.ndarray:
    packed = np.asarray(packed)
    if packed.ndim != 1 or packed.dtype != np.uint8:
        raise ValueError(
            f"packed must be a 1-D uint8 array (the output of pack_int{bits}); got shape "
            f"{packed.shape} and dtype {packed.dtype}."
        )
    per_byte = 8 // bits
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be the positive number of values that were packed; got {n!r}.")
    if -(-int(n) // per_byte) != len(packed):
        raise ValueError(
            f"{n} values of {bits} bits take {-(-int(n) // per_byte)} bytes, but packed has "
            f"{len(packed)}: pass the length of the array you packed."
        )
    shifts = bits * np.arange(per_byte)
    v = (packed[:, None].astype(np.int16) >> shifts) & (2**bits - 1)
    v = v.ravel()[: int(n)]
    if signed:
        half = 2 ** (bits - 1)
        v = (v ^ half) - half  # sign extension: 0b1111 -> -1, 0b1000 -> -8
    return v.astype(np.int8 if signed else np.uint8)


def pack_int4(q, signed: bool = True) -> np.ndarray:
    """Pack 4-bit integers two per byte: ``byte = (q[2k] & 0xF) | (q[2k+1] & 0xF) << 4``.

    ``q`` holds values in ``[-8, 7]`` (``signed=True``) or ``[0, 15]``; anything else raises
    ValueError rather than wrap. An odd count is padded with a zero nibble.

    >>> pack_int4([1, 2, -1, 7, -8]).tolist()  # 0x21, 0x7F, 0x08
    [33, 127, 8]
    >>> [hex(b) for b in pack_int4([15, 0, 3], signed=False)]
    ['0xf', '0x3']
    """
    return _pack(q, 4, signed)


def unpack_int4(packed, n: int, signed: bool = True) -> np.ndarray:
    """The ``n`` 4-bit integers stored in ``packed`` (low nibble first), as int8 or uint8.

    >>> unpack_int4(pack_int4([1, 2, -1, 7, -8]), 5).tolist()
    [1, 2, -1, 7, -8]
    >>> unpack_int4(np.array([0xF8], np.uint8), 2, signed=False).tolist()
    [8, 15]
    """
    return _unpack(packed, n, 4, signed)


def pack_int2(q, signed: bool = True) -> np.ndarray:
    """Pack 2-bit integers four per byte, the first value in bits 0-1.

    ``q`` holds values in ``[-2, 1]`` (``signed=True``) or ``[0, 3]``.

    >>> pack_int2([1, 0, -1, -2, 1]).tolist()  # 0b10110001, then 0b00000001
    [177, 1]
    """
    return _pack(q, 2, signed)


def unpack_int2(packed, n: int, signed: bool = True) -> np.ndarray:
    """The ``n`` 2-bit integers stored in ``packed`` (lowest bits first), as int8 or uint8.

    >>> unpack_int2(pack_int2([1, 0, -1, -2, 1]), 5).tolist()
    [1, 0, -1, -2, 1]
    """
    return _unpack(packed, n, 2, signed)
