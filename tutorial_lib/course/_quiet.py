"""Silence what libraries print while they load, without hiding real errors.

Some packages report harmless things on import: torchao's CPU wheel logs a warning for each GPU
kernel library it does not ship, and native code may write straight to file descriptor 2, where
no Python warning filter reaches. ``quiet_stderr`` catches all of it (file descriptor 2, Python's
``sys.stderr``, warnings and log records up to WARNING) and drops it, or replays the captured text
if the block fails. The bridges use it around such imports, so that lessons never hide stderr
themselves.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

__all__ = ["quiet_stderr"]


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Drop everything written to stderr inside the block: warnings, log records, raw fd 2 output.

    If the block raises, the captured text is written back to stderr before the error propagates.

    >>> with quiet_stderr():
    ...     print("not shown", file=sys.stderr)
    ...     logging.getLogger("noisy").warning("not shown either")
    >>> print("shown")
    shown
    """
    python_level = io.StringIO()
    logging_before = logging.root.manager.disable
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        saved = None  # no usable file descriptor 2 (e.g. closed): silence the Python level only
    with tempfile.TemporaryFile() as sink:
        if saved is not None:
            os.dup2(sink.fileno(), 2)
        try:
            # Loggers that hold their own reference to the old stderr are reached by disabling
            # records up to WARNING; errors still pass.
            logging.disable(logging.WARNING)
            with warnings.catch_warnings(), contextlib.redirect_stderr(python_level):
                warnings.simplefilter("ignore")
                yield
        except BaseException:
            _restore(saved, logging_before)
            saved = None
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace") + python_level.getvalue())
            raise
        finally:
            _restore(saved, logging_before)


def _restore(saved: int | None, logging_level: int) -> None:
    logging.disable(logging_level)
    if saved is None:
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
