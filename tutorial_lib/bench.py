"""The course's benchmarks: ``python -m tutorial_lib.bench {torch,tflite} [--repeats N]``.

Each suite measures accuracy, size and latency of one framework's quantized models side by side
in one run, so that speed-ups are ratios taken on the same machine at the same time. Results go
to ``results/bench_<suite>.json`` and ``results/bench_<suite>.md`` with a description of the
machine; the README's results section shows the Markdown tables.

A suite is a module with ``TITLE: str`` and ``run(repeats: int) -> tuple[list[dict], str]``,
returning the rows (one dict per model variant) and a short note on what was measured.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from tutorial_lib import env

SUITES = {"torch": "tutorial_lib.torch_bench", "tflite": "tutorial_lib.tflite_bench"}
RESULTS = Path(__file__).resolve().parent.parent / "results"


def markdown_table(rows: list[dict]) -> str:
    """Rows of dicts with the same keys as a Markdown table (floats as they are formatted)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    suite = importlib.import_module(SUITES[args.suite])
    rows, note = suite.run(args.repeats)
    machine = env.machine()
    versions = env.versions()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    header = (f"{suite.TITLE}. Measured {stamp} on {machine['cpu']} ({machine['cores']} cores), "
              f"Python {versions['python']}, {args.repeats} timed runs per latency. {note}")
    text = f"{header}\n\n{markdown_table(rows)}\n"
    (args.out / f"bench_{args.suite}.md").write_text(text)
    (args.out / f"bench_{args.suite}.json").write_text(json.dumps(
        {"suite": args.suite, "date": stamp, "machine": machine, "versions": versions,
         "repeats": args.repeats, "note": note, "rows": rows}, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
