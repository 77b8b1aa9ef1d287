"""Copy the benchmarks' Markdown (results/bench_<suite>.md) into the README's results section.

Each suite's text sits in the README between ``<!-- bench:<suite> -->`` and
``<!-- /bench:<suite> -->``, generated from its file: edit the benchmark, not the README. Run
this after ``python -m tutorial_lib.bench``; ``--check`` fails when the README is stale (a test
runs it).

    python tools/readme_results.py [--check]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "results"
BLOCK = re.compile(r"(<!-- bench:(\w+) -->\n)(.*?)(<!-- /bench:\2 -->)", re.S)


def block_text(suite: str) -> str:
    """The suite's Markdown, with headings moved under the README's and images under results/."""
    text = (RESULTS / f"bench_{suite}.md").read_text()
    text = re.sub(r"^### ", "#### ", text, flags=re.M)
    text = re.sub(r"\]\((bench_\w+\.png)\)", r"](results/\1)", text)
    return text.rstrip("\n") + "\n"


def updated(readme: str) -> str:
    def replace(match: re.Match) -> str:
        return match.group(1) + block_text(match.group(2)) + match.group(4)

    return BLOCK.sub(replace, readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the README is stale")
    args = parser.parse_args(argv)
    readme = README.read_text()
    if not BLOCK.search(readme):
        print("README.md has no <!-- bench:<suite> --> blocks", file=sys.stderr)
        return 1
    new = updated(readme)
    if args.check:
        if new != readme:
            print("README.md's results differ from results/bench_*.md: run "
                  "python tools/readme_results.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
