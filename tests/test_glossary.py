"""Every Korean term a lesson introduces is in GLOSSARY.md."""

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
HANGUL_IN_BRACKETS = re.compile(r"\(([\uac00-\ud7a3][\uac00-\ud7a3 ]*)\)")


def test_korean_terms_are_in_the_glossary():
    glossary = (ROOT / "GLOSSARY.md").read_text()
    missing = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                missing += [f"{path.name}: {t}" for t in HANGUL_IN_BRACKETS.findall(cell.source)
                            if f"| {t} |" not in glossary]
    assert not missing, "add these to GLOSSARY.md: " + ", ".join(missing)
