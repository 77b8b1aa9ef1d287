"""Pictures for the lessons (matplotlib) and ``show_source`` for reading the library."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from tutorial_lib.core import formats
from tutorial_lib.core.affine import dequantize

__all__ = ["show_source", "plot_bit_fields", "plot_grid_over_histogram", "plot_error_vs_bits",
           "plot_clipping_ranges", "plot_grouped_bars", "plot_metric_vs_samples",
           "plot_decision_chain", "plot_tradeoff"]

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



# One colour per observer, shared by every calibration picture of lesson 03.
OBSERVER_COLORS = {"min-max": "#e45756", "moving average": "#f58518", "percentile": "#54a24b",
                   "MSE": "#4c78a8", "entropy": "#b279a2"}


def _series_color(label: str, i: int):
    for key, color in OBSERVER_COLORS.items():
        if label.startswith(key):
            return color
    return f"C{i}"


def plot_clipping_ranges(x, ranges: dict[str, tuple[float, float]], ax=None, bins: int = 200,
                         logy: bool = True, title: str | None = None):
    """Histogram of ``x`` with each observer's clipping range as a pair of vertical lines.

    ``ranges`` maps a label to ``(min_val, max_val)``; a lower end at 0 (one-sided data such as
    ReLU outputs) is not drawn. A log scale shows the few values in the tail.
    """
    x = np.asarray(x, dtype=np.float32).ravel()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    ax.hist(x, bins=bins, color="#c6dbef", edgecolor="none", log=logy)
    styles = ["-", "--", "-.", ":"]
    for i, (label, (lo, hi)) in enumerate(ranges.items()):
        color, style = _series_color(label, i), styles[i % len(styles)]
        ax.axvline(hi, color=color, ls=style, lw=1.6, label=f"{label}: [{lo:.3g}, {hi:.3g}]")
        if lo < 0:
            ax.axvline(lo, color=color, ls=style, lw=1.6)
    ax.set_xlabel("value")
    ax.set_ylabel("count (log)" if logy else "count")
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_grouped_bars(values: dict[str, Sequence[float]], groups: Sequence[str], ylabel: str,
                      ax=None, title: str | None = None):
    """Bars side by side: one group per entry of ``groups``, one colour per key of ``values``.

    A NaN value leaves its bar out (a setting that does not apply to that group).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    width = 0.8 / max(1, len(values))
    pos = np.arange(len(groups))
    for i, (label, v) in enumerate(values.items()):
        v = np.asarray(v, dtype=float)
        if v.shape != (len(groups),):
            raise ValueError(f"{label!r} has {v.size} values for {len(groups)} groups.")
        ax.bar(pos + (i - (len(values) - 1) / 2) * width, v, width, label=label)
    ax.set_xticks(pos, list(groups))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, ncol=len(values), loc="upper center", bbox_to_anchor=(0.5, -0.12),
              frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_metric_vs_samples(sizes: Sequence[int], results: dict[str, np.ndarray], ylabel: str,
                           ax=None, title: str | None = None):
    """A metric against the number of calibration samples (log axis), one line per observer.

    ``results[label]`` has one row per size and one column per repetition (seed): the line is
    the mean, the shaded band spans the smallest to the largest repetition.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    sizes = np.asarray(sizes)
    for i, (label, r) in enumerate(results.items()):
        r = np.asarray(r, dtype=float).reshape(len(sizes), -1)
        color = _series_color(label, i)
        ax.plot(sizes, r.mean(axis=1), marker="o", color=color, label=label)
        ax.fill_between(sizes, r.min(axis=1), r.max(axis=1), color=color, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("calibration images")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_decision_chain(steps: Sequence[tuple[str, str]], last: str, footer: str = "", ax=None,
                        title: str | None = None):
    """A decision tree whose questions form a chain: each "yes" ends in an answer on the right,
    each "no" leads down to the next question, and the last "no" ends in ``last``.

    ``steps`` holds ``(question, answer if yes)`` pairs, top to bottom; text may contain
    newlines. ``footer`` is a note under the whole tree.
    """
    if not steps:
        raise ValueError("steps must hold at least one (question, answer) pair.")
    n = len(steps)
    footer_lines = footer.count("\n") + 1 if footer else 0
    if ax is None:
        _, ax = plt.subplots(figsize=(8.4, 1.45 * (n + 1) + 0.3 * footer_lines))
    question = dict(boxstyle="round,pad=0.45", facecolor="#eef3fa", edgecolor="#4c78a8")
    answer = dict(boxstyle="round,pad=0.45", facecolor="#eaf5e7", edgecolor="#54a24b")
    arrow = dict(arrowstyle="-|>", color="#555555", lw=1.1)
    x_q, x_a = 0.26, 0.77
    ys = [1 - (i + 0.5) / (n + 1) for i in range(n + 1)]
    for i, (q, a) in enumerate(steps):
        ax.text(x_q, ys[i], q, ha="center", va="center", fontsize=8.5, bbox=question)
        ax.text(x_a, ys[i], a, ha="center", va="center", fontsize=8.5, bbox=answer)
        ax.annotate("", xy=(x_a - 0.23, ys[i]), xytext=(x_q + 0.22, ys[i]), arrowprops=arrow)
        ax.text((x_q + x_a) / 2, ys[i] + 0.02, "yes", ha="center", fontsize=8, color="#333")
        ax.annotate("", xy=(x_q, ys[i + 1] + 0.055), xytext=(x_q, ys[i] - 0.055),
                    arrowprops=arrow)
        ax.text(x_q + 0.015, (ys[i] + ys[i + 1]) / 2, "no", va="center", fontsize=8, color="#333")
    ax.text(x_q, ys[n], last, ha="center", va="center", fontsize=8.5, bbox=answer)
    bottom = -0.06 * footer_lines  # the footer gets its own band below the last answer
    if footer:
        ax.text(0.5, bottom, footer, ha="center", va="bottom", fontsize=8.5, style="italic")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom, 1)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_tradeoff(rows: Sequence[dict], x: str, y: str, label: str = "method", ax=None,
                  baseline: float | None = 1.0, title: str | None = None):
    """One point per row of a results table (``x`` against ``y``), each labelled with ``row[label]``.

    For the accuracy / size / latency trade-off of a set of quantized models, e.g.
    ``plot_tradeoff(rows, "size MB", "speed-up b32")``. ``baseline`` draws a dashed line at that
    ``y`` (1.0: as fast as the reference); None draws none.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    xs = np.array([float(r[x]) for r in rows])
    ys = np.array([float(r[y]) for r in rows])
    span_x = max(float(np.ptp(xs)), 1e-12)
    span_y = max(float(np.ptp(ys)), 1e-12)
    placed: list[tuple[float, float]] = []
    for i, row in enumerate(rows):
        color = _series_color(str(row[label]), i)
        ax.scatter(xs[i], ys[i], color=color, s=30, zorder=3)
        # Points that (nearly) coincide get their labels stacked downwards instead of overlapping.
        near = sum(abs(xs[i] - px) < 0.05 * span_x and abs(ys[i] - py) < 0.06 * span_y
                   for px, py in placed)
        placed.append((xs[i], ys[i]))
        ax.annotate(str(row[label]), (xs[i], ys[i]), textcoords="offset points",
                    xytext=(6, 3 - 9 * near), fontsize=7, color=color)
    if baseline is not None:
        ax.axhline(baseline, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.margins(x=0.25, y=0.15)
    if title:
        ax.set_title(title, fontsize=9)
    return ax
