"""Where the course writes files: the learner's own cache folder, never the installed package.

``cache_dir()`` is the usual per-user cache folder of the system, as ``platformdirs`` would
choose it:

- Linux and other Unix systems: ``$XDG_CACHE_HOME/tutorial_lib``, else ``~/.cache/tutorial_lib``;
- macOS: ``~/Library/Caches/tutorial_lib``;
- Windows: ``%LOCALAPPDATA%\\tutorial_lib\\Cache``.

The environment variable ``TL_CACHE_DIR`` replaces it, e.g. on a JupyterHub whose home folders
are small, or in a sandbox: ``TL_CACHE_DIR=/scratch/tl-cache``. Everything in it can be
deleted; the course makes it again (lesson 10's SmolLM2 takes about 20 s more on its next load).

Standard library only: the course's set-up script may import it before numpy is installed.

>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     os.environ["TL_CACHE_DIR"] = tmp
...     folder = cache_dir("llm")
...     print(folder.relative_to(tmp).as_posix(), folder.is_dir())
...     del os.environ["TL_CACHE_DIR"]
llm True
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ENV_VAR", "cache_dir", "system_cache_dir", "source_checkout", "new_entry"]

ENV_VAR = "TL_CACHE_DIR"
APP = "tutorial_lib"


def system_cache_dir() -> Path:
    """The system's usual per-user cache folder for the course (``TL_CACHE_DIR`` aside)."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / APP / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP
    # XDG Base Directory: a relative $XDG_CACHE_HOME is invalid and is ignored
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / APP


def cache_dir(*parts: str, create: bool = True) -> Path:
    """The course's cache folder (``TL_CACHE_DIR``, else :func:`system_cache_dir`) joined with
    ``parts``; with ``create``, made if missing and checked to be writable.

    Raises ``ValueError`` when ``TL_CACHE_DIR`` is not an absolute path or a part leaves the
    folder, and ``OSError`` (its usual subclass) naming the folder and ``TL_CACHE_DIR`` when the
    folder cannot be made or written.
    """
    override = os.environ.get(ENV_VAR, "")
    if override:
        root = Path(override).expanduser()
        if not root.is_absolute():
            raise ValueError(
                f"{ENV_VAR} must be an absolute path (a notebook and a terminal start in different "
                f"folders); got {override!r}.")
    else:
        root = system_cache_dir()
    for part in parts:
        if not part or Path(part).is_absolute() or ".." in Path(part).parts:
            raise ValueError(f"cache_dir parts must be relative names inside the cache; got {part!r}.")
    folder = root.joinpath(*parts)
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # a real write: as root, or on a read-only mount, permission bits do not tell
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
            os.close(fd)
            os.remove(probe)
        except OSError as err:
            where = f"{ENV_VAR}={override}" if override else f"the default for {sys.platform}"
            raise type(err)(
                f"cannot write the course's cache folder {folder} ({where}): "
                f"{err.strerror or err}. Set the environment variable {ENV_VAR} to a folder you "
                f"can write, e.g. {ENV_VAR}={Path(tempfile.gettempdir()) / 'tl-cache'}, then "
                f"restart the notebook's kernel.") from err
    return folder


def source_checkout() -> Path | None:
    """The course's folder when ``tutorial_lib`` is imported from a git checkout of the course
    (``pyproject.toml`` beside the package, as with ``pip install -e .``), else None (installed
    from a wheel into site-packages, where nothing may be written)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


@contextlib.contextmanager
def new_entry(folder: str | Path) -> Iterator[Path]:
    """A cache entry that appears whole or not at all: yields an empty sibling folder to fill,
    renamed to ``folder`` when the ``with`` block succeeds and removed when it fails (a second
    kernel filling the same entry meanwhile wins; its copy is kept)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".partial-", dir=folder.parent))
    try:
        yield tmp
        try:
            tmp.replace(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
