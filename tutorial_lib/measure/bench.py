"""The course's benchmarks: ``python -m tutorial_lib.bench [torch|tflite|sweep] [--repeats N]``.

Each suite measures accuracy, size and latency of one framework's quantized models side by side
in one run, so that speed-ups are ratios taken on the same machine at the same time. Results go
to ``<out>/bench_<suite>.json`` and ``<out>/bench_<suite>.md`` (and a plot,
``<out>/bench_<suite>.png``, for a suite that draws one) with a description of the machine and
its int8 instructions. ``--out`` defaults to the course checkout's ``results/`` folder, which the
README's results section shows, and to ``tl.paths.cache_dir("results")`` when the library is
installed from a wheel (never into the installed package). Without a suite name, every suite
runs, one after the other.

A suite is a module with ``TITLE: str`` and ``run(repeats: int)`` returning ``(rows, note)``,
optionally followed by more Markdown and a matplotlib figure: the rows are one dict per model
variant, the note says what was measured.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from tutorial_lib.course import env, paths

SUITES = {"torch": "tutorial_lib.torch_bench", "tflite": "tutorial_lib.tflite_bench",
          "sweep": "tutorial_lib.sweep_bench"}


def results_dir() -> Path:
    """Where results go by default: the checkout's ``results/``, else the learner's cache."""
    checkout = paths.source_checkout()
    return checkout / "results" if checkout is not None else paths.cache_dir("results")


def markdown_table(rows: list[dict]) -> str:
    """Rows of dicts with the same keys as a Markdown table (floats as they are formatted)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def run_suite(name: str, repeats: int, out: Path) -> str:
    """Run one suite and write its results; return the Markdown written."""
    suite = importlib.import_module(SUITES[name])
    rows, note, *more = suite.run(repeats)
    extra = more[0] if more else ""
    fig = more[1] if len(more) > 1 else None
    machine = env.machine()
    features = env.int8_features()
    versions = env.versions()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    out.mkdir(parents=True, exist_ok=True)
    have = ", ".join(k for k, ok in features.items() if ok) or "none of those the course lists"
    header = (f"{suite.TITLE}. Measured {stamp} on {machine['cpu']} ({machine['cores']} cores; "
              f"int8 instructions: {have}), Python {versions['python']}, {repeats} timed runs per "
              f"latency. {note}")
    text = f"{header}\n\n{markdown_table(rows)}\n"
    if fig is not None:
        fig.savefig(out / f"bench_{name}.png", dpi=110)
        text += f"\n![speed-up against model size](bench_{name}.png)\n"
    if extra:
        text += f"\n{extra}"
    (out / f"bench_{name}.md").write_text(text)
    (out / f"bench_{name}.json").write_text(json.dumps(
        {"suite": name, "date": stamp, "machine": machine, "int8_features": features,
         "versions": versions, "repeats": repeats, "note": note, "rows": rows, "extra": extra},
        indent=1) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", nargs="?", choices=sorted(SUITES),
                        help="one suite (default: all of them)")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per measurement")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the results (default: the course checkout's results/, "
                             "or the course's cache folder when installed from a wheel)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}.")
    out = args.out if args.out is not None else results_dir()
    for name in [args.suite] if args.suite else list(SUITES):
        print(run_suite(name, args.repeats, out))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
