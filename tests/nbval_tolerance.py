"""A pytest plugin: numeric tolerance for the notebook cells that declare one.

Strict nbval compares every stored output character for character. That is right for integer
results and numpy-only cells, which are exact on every machine, and wrong for the few outputs
that depend on float kernels (an accuracy after fine-tuning, a float rounding error), whose last
digits move from one instruction set to the next. A cell declares how far its numbers may move
with a comment line:

    # NBVAL_TOLERANCE abs=1.5   (accuracy in %: about 5 of the 360 test images)

``abs=`` and ``rel=`` may be given together (a number passes when it is within either). The
comparison then splits each text output into numbers and the words between them: the words must
be identical (spaces aside, as a wider number shifts a column), the same count of numbers must
appear, and each number must lie within the tolerance of the stored one. A cell that passes is
then compared by nbval as usual against its own stored text, so a failure reads like any other
nbval failure. Cells without the comment stay strict.
"""

from __future__ import annotations

import copy
import re
from typing import NamedTuple

MARKER = re.compile(r"^\s*#\s*NBVAL_TOLERANCE\b(?P<args>.*)$", re.MULTILINE)
_ARG = re.compile(r"\b(abs|rel)=([0-9.eE+-]+)")
# A number not glued to a name (conv1, int8 and fp16 are words, not numbers).
NUMBER = re.compile(r"(?<![A-Za-z_\d.])-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")


class Tolerance(NamedTuple):
    abs: float = 0.0
    rel: float = 0.0


def parse_marker(source: str) -> Tolerance | None:
    """The tolerance a cell declares, or None for a strict cell.

    >>> parse_marker("x = 1\\n# NBVAL_TOLERANCE abs=0.5 (points)\\nprint(x)")
    Tolerance(abs=0.5, rel=0.0)
    >>> parse_marker("print(1)") is None
    True
    """
    match = MARKER.search(source)
    if match is None:
        return None
    values = dict(_ARG.findall(match["args"]))
    if not values:
        raise ValueError(
            f"NBVAL_TOLERANCE needs abs= and/or rel=, e.g. '# NBVAL_TOLERANCE abs=0.5'; "
            f"got {match.group(0).strip()!r}."
        )
    return Tolerance(float(values.get("abs", 0.0)), float(values.get("rel", 0.0)))


def _skeleton(text: str) -> str:
    return re.sub(r"\s+", " ", NUMBER.sub("#", text)).strip()


def within(reference: str, actual: str, tolerance: Tolerance) -> bool:
    """Whether ``actual`` says what ``reference`` says, each number within ``tolerance``.

    >>> within("accuracy 98.9%", "accuracy  98.6%", Tolerance(abs=0.5))
    True
    >>> within("accuracy 98.9%", "accuracy 90.0%", Tolerance(abs=0.5))
    False
    >>> within("accuracy 98.9%", "error 98.9%", Tolerance(abs=0.5))
    False
    """
    if _skeleton(reference) != _skeleton(actual):
        return False
    ref_numbers = [float(n.replace(",", "")) for n in NUMBER.findall(reference)]
    act_numbers = [float(n.replace(",", "")) for n in NUMBER.findall(actual)]
    return all(abs(a - r) <= max(tolerance.abs, tolerance.rel * abs(r))
               for r, a in zip(ref_numbers, act_numbers, strict=True))


def _texts(output) -> list[tuple[dict, str]]:
    """(container, key) pairs of an output's comparable text."""
    if output.get("output_type") == "stream":
        return [(output, "text")]
    data = output.get("data", {})
    return [(data, "text/plain")] if "text/plain" in data else []


def snap(test_outputs, ref_outputs, tolerance: Tolerance):
    """Copies of ``test_outputs`` in which every text within tolerance of its stored twin is
    replaced by that twin; anything else is left as it ran, for nbval to report."""
    snapped = copy.deepcopy(list(test_outputs))
    if len(snapped) != len(ref_outputs):
        return snapped
    for test, ref in zip(snapped, ref_outputs, strict=True):
        for (t_box, key), (r_box, r_key) in zip(_texts(test), _texts(ref), strict=False):
            if key == r_key and within(r_box[r_key], t_box[key], tolerance):
                t_box[key] = r_box[r_key]
    return snapped


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is None or not hasattr(item, "compare_outputs"):
            continue
        tolerance = parse_marker(cell.source)
        if tolerance is None:
            continue
        strict_compare = item.compare_outputs

        def tolerant_compare(test, ref, skip_compare=None, _strict=strict_compare,
                             _tolerance=tolerance):
            return _strict(snap(test, ref, _tolerance), ref, skip_compare)

        item.compare_outputs = tolerant_compare
