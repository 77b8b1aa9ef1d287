"""Input checks shared by the library: every bad input becomes a ValueError that says what to do."""

from __future__ import annotations

import numbers

import numpy as np


def as_finite_float32(x, name: str = "x", allow_empty: bool = False) -> np.ndarray:
    """Return ``x`` as a float32 array, or raise ValueError if it is empty, NaN or infinite."""
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers; got {type(x).__name__} ({err}).") from None
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: pass at least one value.")
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s): quantization needs finite numbers; "
            "clean the data (np.nan_to_num) or find where the NaN comes from."
        )
    return arr


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
