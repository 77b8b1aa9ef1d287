"""Input checks shared by the library: every bad input becomes a ValueError that says what to do."""

from __future__ import annotations

import numbers

import numpy as np


def as_finite_float32(x, name: str = "x", allow_empty: bool = False) -> np.ndarray:
    """Return ``x`` as a float32 array, or raise ValueError if it is empty, NaN or infinite."""
    kind = np.asarray(x).dtype.kind if not hasattr(x, "dtype") else np.dtype(x.dtype).kind
    if kind == "b":
        raise ValueError(f"{name} is boolean: quantization needs numbers; convert it first, "
                         f"e.g. {name}.astype(np.float32) if True/False should become 1.0/0.0.")
    if kind in "USO" and _holds_text(x):
        raise ValueError(f"{name} holds text, not numbers: convert it first (float(...)).")
    try:
        with np.errstate(over="ignore"):  # reported below as beyond float32's range
            arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers; got {type(x).__name__} ({err}).") from None
    with np.errstate(over="ignore"):
        overflowed = np.isfinite(np.asarray(x, dtype=np.float64)) & ~np.isfinite(arr) \
            if kind in "fiu" else np.zeros(arr.shape, bool)
    if np.any(overflowed):
        raise ValueError(f"{name} holds values beyond float32's range (about 3.4e38): "
                         "rescale the data before quantizing it.")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: pass at least one value.")
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s): quantization needs finite numbers; "
            "clean the data (np.nan_to_num) or find where the NaN comes from."
        )
    return arr


def _holds_text(x) -> bool:
    """True for strings and arrays or lists that contain strings or bytes."""
    return any(isinstance(v, str | bytes | np.str_ | np.bytes_)
               for v in np.asarray(x, dtype=object).ravel())


def _is_whole(v) -> bool:
    """True for ints and integral floats (3 or 3.0), False for bools, strings and 3.5."""
    if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Real):
        return False
    return float(v).is_integer()


def check_quant_range(quant_min, quant_max) -> tuple[int, int]:
    """Return the range as Python ints, or raise ValueError if it is empty or not integer."""
    for name, v in (("quant_min", quant_min), ("quant_max", quant_max)):
        if not _is_whole(v):
            raise ValueError(f"{name} must be an integer; got {v!r}.")
    quant_min, quant_max = int(quant_min), int(quant_max)
    if quant_min >= quant_max:
        raise ValueError(
            f"quant_min ({quant_min}) must be smaller than quant_max ({quant_max}); "
            "use tl.qrange(bits) to get a valid pair."
        )
    return quant_min, quant_max


def check_bits(bits) -> int:
    """Return ``bits`` as an int in 2..16, or raise ValueError."""
    if not _is_whole(bits) or not 2 <= int(bits) <= 16:
        raise ValueError(f"bits must be an integer from 2 to 16; got {bits!r}.")
    return int(bits)
