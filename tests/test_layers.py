"""The library's layers: every module in a layer folder, imports pointing down, no cycle, and
every name the lessons use still reaching the same module."""

from __future__ import annotations

import ast
import functools
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tutorial_lib as tl

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tutorial_lib"


@functools.cache
def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (``core.affine``), packages' ``__init__`` too."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def home_of(dotted: str) -> str:
    """``bridges.torch_bridge`` for ``torch_bridge`` or ``bridges.torch_bridge``."""
    first, _, rest = dotted.partition(".")
    if first in tl.HOMES:
        return tl.HOMES[first] + (f".{rest}" if rest else "")
    return dotted


def layer_of(dotted: str) -> str | None:
    first = dotted.split(".")[0]
    return first if first in tl.LAYERS else None


def imports_of(path: Path, own: str) -> list[tuple[int, str]]:
    """(line, dotted module inside the package) for every import in the file, those inside
    functions included; ``from tutorial_lib.core import affine`` counts as ``core.affine``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    seen = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tutorial_lib."):
                    seen.append((node.lineno, alias.name.removeprefix("tutorial_lib.")))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module == "tutorial_lib":
                module = ""
            elif node.module and node.module.startswith("tutorial_lib."):
                module = node.module.removeprefix("tutorial_lib.")
            else:
                continue
            files = module_files()
            for alias in node.names:
                candidate = f"{module}.{alias.name}" if module else alias.name
                if candidate in files or candidate in tl.HOMES or candidate in tl.LAYERS:
                    seen.append((node.lineno, candidate))  # a module
                elif module:
                    seen.append((node.lineno, module))  # a name from a module
    return seen


def test_every_module_lives_in_a_layer_folder_named_in_the_map():
    for dotted, path in module_files().items():
        if dotted == "" or dotted in tl.LAYERS:
            continue
        layer, _, name = dotted.partition(".")
        assert layer in tl.LAYERS, (
            f"{path.relative_to(ROOT)} sits outside the layer folders; move it into one of "
            f"{', '.join(tl.LAYERS)} and add it to tutorial_lib.LAYERS")
        if layer != "checks":
            assert name in tl.LAYERS[layer], (
                f"{path.relative_to(ROOT)} is missing from tutorial_lib.LAYERS[{layer!r}]")
    for layer, names in tl.LAYERS.items():
        for name in names:
            assert (PACKAGE / layer / f"{name}.py").is_file(), f"LAYERS names {layer}/{name}.py"
        assert (PACKAGE / layer / "__init__.py").read_text(encoding="utf-8").startswith('"""'), (
            f"tutorial_lib/{layer}/__init__.py must open with a docstring saying what lives there")


def test_imports_point_down_and_never_through_the_short_names():
    wrong = []
    for dotted, path in module_files().items():
        own = layer_of(dotted)
        if own is None:  # the package's own __init__ sits above every layer
            continue
        for line, target in imports_of(path, dotted):
            if target.split(".")[0] in tl.HOMES:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} by its short "
                             f"name; import it from its home, tutorial_lib.{home_of(target)}")
                continue
            other = layer_of(target)
            if other is None or other == own:
                continue
            if tl.LEVELS[other] >= tl.LEVELS[own]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}, level {tl.LEVELS[own]}) "
                             f"imports {target} ({other}, level {tl.LEVELS[other]}): a layer "
                             "imports only from the layers below it")
    assert not wrong, "\n".join(wrong)


FRAMEWORKS = {"torch", "torchao", "tensorflow", "tf_keras", "keras", "tensorflow_model_optimization",
              "transformers"}


def test_the_core_imports_no_framework():
    for path in sorted((PACKAGE / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in FRAMEWORKS, (
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {name}: the core is numpy "
                    "only; put framework code in tutorial_lib/bridges")


def test_no_import_cycle():
    files = module_files()
    graph = {}
    for dotted, path in files.items():
        graph[dotted] = {home_of(t) for _, t in imports_of(path, dotted)} & set(files) - {dotted}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_checker_finds_a_wrong_import(tmp_path):
    bad = tmp_path / "models.py"
    bad.write_text("def f():\n    from tutorial_lib.bridges import torch_bridge\n"
                   "from tutorial_lib import data\n")
    found = imports_of(bad, "course.models")
    assert (2, "bridges.torch_bridge") in found and (3, "data") in found


# --- nothing changes for a learner ----------------------------------------------------------

def used_names() -> dict[str, set[str]]:
    """Short module names the lessons, exercises, solutions, README and TEACHING.md use, with
    the attributes they read from each (``tl.torch_bridge.pt2e_int8`` -> pt2e_int8)."""
    texts = []
    for folder in ("notebooks", "solutions", "exercises"):
        for nb in sorted((ROOT / folder).glob("*.ipynb")):
            cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
            texts += ["".join(c["source"]) for c in cells]
    texts += [(ROOT / name).read_text(encoding="utf-8") for name in ("README.md", "TEACHING.md")]
    used: dict[str, set[str]] = {}
    aliases: dict[str, str] = {}
    for text in texts:
        for module, attr in re.findall(r"\b(?:tl|tutorial_lib)\.(\w+)(?:\.(\w+))?", text):
            used.setdefault(module, set()).update([attr] if attr else [])
        for names in re.findall(r"from tutorial_lib import ([\w ,]+)", text):
            for item in names.split(","):
                name, _, alias = item.strip().partition(" as ")
                used.setdefault(name.strip(), set())
                aliases[(alias or name).strip()] = name.strip()
        for alias, name in aliases.items():
            for attr in re.findall(rf"\b{re.escape(alias)}\.(\w+)", text):
                used.setdefault(name, set()).add(attr)
    return used


def test_every_name_the_lessons_use_reaches_the_module_in_its_new_home():
    used = used_names()
    assert {"torch_bridge", "tflite_bridge", "metrics", "checks", "llm"} <= set(used)
    for name, attrs in sorted(used.items()):
        if name in tl.HOMES:
            home = importlib.import_module(f"tutorial_lib.{tl.HOMES[name]}")
            assert getattr(tl, name) is home
            assert importlib.import_module(f"tutorial_lib.{name}") is home
            assert sys.modules[f"tutorial_lib.{name}"] is home
            assert home.__name__ == f"tutorial_lib.{tl.HOMES[name]}"  # one module, not a copy
            if name in ("torch_bridge", "tflite_bridge", "torch_model", "torch_quant", "qat",
                        "torch_compress", "tf_fake_quant", "keras_compress", "llm", "lora",
                        "debug", "speed", "tflite_bench", "torch_bench", "sweep_bench"):
                continue  # these need a framework: their attributes are read in the lessons' runs
            for attr in attrs:
                if attr not in ("py", "ipynb", "md") and not attr.endswith("_"):
                    assert hasattr(home, attr), f"tl.{name}.{attr} is gone"
        elif name in ("checks", *tl.LAYERS):
            module = getattr(tl, name)
            for attr in attrs - {"check_"}:  # "tl.checks.check_<name>" in the prose
                assert hasattr(module, attr), f"tl.{name}.{attr} is gone"
        elif name not in ("egg", "test", "weights", "third_party", "__version__"):
            assert hasattr(tl, name), f"tl.{name} is used by the course but gone"


def test_framework_modules_keep_their_names():
    pytest.importorskip("torch")
    import tutorial_lib.torch_bridge as old
    from tutorial_lib.bridges import torch_bridge as new

    assert old is new is tl.torch_bridge
    assert isinstance(new.torch_cnn(trained=False), new.CourseCNN)
    assert old.__spec__.name == "tutorial_lib.bridges.torch_bridge"


@pytest.mark.parametrize("module", ["bench", "grade"])
def test_python_dash_m_runs_a_module_by_its_short_name(module):
    done = subprocess.run([sys.executable, "-m", f"tutorial_lib.{module}", "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and done.stderr == ""
