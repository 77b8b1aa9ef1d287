"""Pictures for the lessons (matplotlib) and ``show_source`` for reading the library."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from tutorial_lib import formats
from tutorial_lib.affine import dequantize

__all__ = ["show_source", "plot_bit_fields", "plot_grid_over_histogram", "plot_error_vs_bits"]

# One colour per field, used by every picture of bits in the course.
FIELD_COLORS = {"sign": "#e45756", "exponent": "#4c78a8", "mantissa": "#54a24b"}


def show_source(obj) -> None:
    """Print the source code of a library function or class, for reading in a lesson."""
    print(inspect.getsource(obj).rstrip())


def plot_bit_fields(values: Sequence[float], fmts: Sequence[str] | str = "fp32", ax=None):
    """Draw the bits of each value in each format as coloured boxes (sign, exponent, mantissa)."""
    fmts = [fmts] if isinstance(fmts, str) else list(fmts)
    rows = [(v, f) for f in fmts for v in values]
    width = max(formats.get_format(f).bits for f in fmts)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.28 * width + 3.2, 0.42 * len(rows) + 0.5))
    for r, (value, fmt) in enumerate(rows):
        f = formats.get_format(fmt)
        y = len(rows) - 1 - r
        bits = formats.bit_string(value, f).replace(" ", "")
        kinds = ["sign"] + ["exponent"] * f.exponent_bits + ["mantissa"] * f.mantissa_bits
        for i, (bit, kind) in enumerate(zip(bits, kinds, strict=True)):
            ax.add_patch(plt.Rectangle((i, y + 0.1), 0.95, 0.8, color=FIELD_COLORS[kind], alpha=0.85))
            ax.text(i + 0.47, y + 0.5, bit, ha="center", va="center", color="white", fontsize=8)
        stored = formats.round_to([value], f)[0]
        ax.text(-0.5, y + 0.5, f"{fmt} {value:g}", ha="right", va="center", fontsize=9)
        ax.text(f.bits + 0.4, y + 0.5, f"= {stored:.10g}", ha="left", va="center", fontsize=9)
    ax.set_xlim(-7, width + 7)
    ax.set_ylim(0, len(rows))
    ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in FIELD_COLORS.values()]
    ax.legend(handles, list(FIELD_COLORS), loc="upper center", ncol=3, frameon=False,
              bbox_to_anchor=(0.5, 0.0), fontsize=8)
    return ax


def plot_grid_over_histogram(x, scale, zero_point, quant_min: int, quant_max: int, ax=None,
                             bins: int = 120, max_lines: int = 64, title: str | None = None):
    """Histogram of ``x`` with the quantization grid (every representable value) on top.

    The grid is drawn as thin vertical lines (thinned out when there are too many to see), the
    clipping range as two red lines.
    """
    x = np.asarray(x, dtype=np.float32).ravel()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.6))
    ax.hist(x, bins=bins, color="#9ecae9", edgecolor="none")
    levels = dequantize(np.arange(quant_min, quant_max + 1), scale, zero_point)
    step = max(1, len(levels) // max_lines)
    for v in levels[::step]:
        ax.axvline(v, color="#555555", lw=0.5, alpha=0.6)
    for v in (levels[0], levels[-1]):
        ax.axvline(v, color="#e45756", lw=1.5)
    clipped = np.mean((x < levels[0]) | (x > levels[-1]))
    shown = "every level" if step == 1 else f"every {step}th level"
    ax.set_title(title or f"{len(levels)} levels ({shown} drawn), scale={float(scale):.4g}, "
                 f"zero_point={int(zero_point)}, clipped {clipped:.1%}", fontsize=9)
    ax.set_xlabel("value")
    return ax


def plot_error_vs_bits(results: dict[str, Sequence[tuple[int, float]]], ylabel: str, ax=None,
                       logy: bool = False):
    """Line plot of an error measure against bit width, one line per scheme."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    for label, points in results.items():
        bits, values = zip(*points, strict=True)
        ax.plot(bits, values, marker="o", label=label)
    ax.set_xlabel("bits")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax

