"""The course's licence, and a licence and a source beside every file it bundles from elsewhere."""

import hashlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIRD_PARTY = ROOT / "tutorial_lib" / "third_party"
# sha256 of the Apache License 2.0 with its whitespace collapsed to single spaces: the text of
# https://www.apache.org/licenses/LICENSE-2.0.txt, however a copy indents or wraps it
APACHE_2_0 = "0ffddef9e48f8a09aed5caf2d44f7ba1c1be2d9b8e0a6f693b1635b2d5566645"


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(" ".join(path.read_text(encoding="utf-8").split()).encode()).hexdigest()


def test_the_license_is_apache_2_0_as_pyproject_says():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:6] == ["Apache", "License", "Version", "2.0,", "January", "2004"]
    assert "APPENDIX: How to apply the Apache License to your work." in text
    assert _fingerprint(ROOT / "LICENSE") == APACHE_2_0  # the whole text, unchanged
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    license_ = project["license"]
    assert (license_["text"] if isinstance(license_, dict) else license_) == "Apache-2.0"


@pytest.mark.parametrize("folder", sorted(p.name for p in THIRD_PARTY.iterdir() if p.is_dir()))
def test_each_third_party_folder_has_its_license_and_source(folder):
    here = THIRD_PARTY / folder
    licenses = [p for p in here.iterdir() if p.name.upper().startswith(("LICENSE", "COPYING"))]
    assert licenses, f"{here} has no LICENSE file"
    assert all(p.read_text(encoding="utf-8").strip() for p in licenses)
    provenance = (here / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "**License**" in provenance and "<http" in provenance  # the licence and the source
    for data in here.iterdir():  # every bundled file is named where its source is given
        if data not in licenses and data.name != "PROVENANCE.md":
            assert f"`{data.name}`" in provenance, f"{data.name} is not described in {folder}/PROVENANCE.md"


def test_the_apache_licensed_model_carries_the_standard_text():
    assert "Apache License 2.0" in (THIRD_PARTY / "microwakeword" / "PROVENANCE.md").read_text()
    assert _fingerprint(THIRD_PARTY / "microwakeword" / "LICENSE") == APACHE_2_0


def test_the_shipped_weights_say_whose_they_are():
    provenance = (ROOT / "tutorial_lib" / "weights" / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "tools/train_models.py" in provenance and "Apache License 2.0" in provenance
    assert "archive.ics.uci.edu" in provenance  # the training data's source
