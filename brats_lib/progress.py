"""Progress bars and log lines for long work, shown where a person is watching.

Every module of the library takes its progress bar from :func:`tqdm` here instead of ``tqdm.auto``. The mode
comes from the environment variable ``BRATS_PROGRESS``:

``auto`` (default)
    ``tqdm.auto``: a text bar in a terminal, a widget in JupyterLab.
``terminal``
    a text bar on the *terminal* of the process, never in a notebook's outputs. Inside a Jupyter kernel this is
    the kernel's original standard error (the terminal that started papermill), which ipykernel does not
    forward to the notebook. ``scripts/run_notebooks.py`` sets this mode, so the executed notebooks of the HTML
    book hold no progress bars, no empty progress widgets and no epoch log lines.
``off``
    no bars, no log lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, Iterator

MODES = ("auto", "terminal", "off")
ENV = "BRATS_PROGRESS"

_terminal: IO[str] | None = None


def mode() -> str:
    """The progress mode from ``BRATS_PROGRESS`` (``auto`` when unset); an unknown value is an error."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


def terminal_stream() -> IO[str]:
    """A text stream to the process's terminal: inside a Jupyter kernel, the standard error it was started
    with (not forwarded to the notebook); elsewhere ``sys.stderr``."""
    global _terminal
    original = getattr(sys.stderr, "_original_stdstream_copy", None)  # ipykernel's saved copy of fd 2
    if original is None:
        # ipykernel does not watch fd 2 (e.g. under pytest, where it never does): the process's own standard
        # error still goes to the terminal, while ``sys.stderr`` would go into the notebook
        return sys.__stderr__ if _in_kernel() and sys.__stderr__ is not None else sys.stderr
    if _terminal is None or _terminal.closed:
        _terminal = os.fdopen(os.dup(original), "w", buffering=1, encoding="utf-8", errors="replace")
    return _terminal


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (``sys.stderr`` is ipykernel's stream, not the process's)."""
    return type(sys.stderr).__module__.startswith("ipykernel")


@contextlib.contextmanager
def children_to_terminal() -> Iterator[None]:
    """In ``terminal`` mode inside a Jupyter kernel: child processes started in this block (e.g. the kernels of a
    papermill sweep) write their standard output and error to the terminal, not into the notebook. Elsewhere,
    and in the other modes, it does nothing."""
    original = getattr(sys.stderr, "_original_stdstream_copy", None)
    if mode() != "terminal" or original is None:
        yield
        return
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        for fd in saved:
            os.dup2(original, fd)
        yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def tqdm(*args, **kwargs):
    """A tqdm progress bar in the current :func:`mode` (same arguments as ``tqdm.tqdm``)."""
    current = mode()
    if current == "auto":
        from tqdm.auto import tqdm as auto_tqdm

        return auto_tqdm(*args, **kwargs)
    from tqdm.std import tqdm as std_tqdm

    if current == "off":
        kwargs["disable"] = True
    else:
        kwargs.setdefault("file", terminal_stream())
    return std_tqdm(*args, **kwargs)


def write(message: str) -> None:
    """One log line beside the progress bars: ``tqdm.write`` in ``auto`` mode, the terminal in ``terminal``
    mode, nothing in ``off`` mode."""
    current = mode()
    if current == "off":
        return
    if current == "terminal":
        from tqdm.std import tqdm as std_tqdm

        std_tqdm.write(message, file=terminal_stream())
        return
    from tqdm.auto import tqdm as auto_tqdm

    auto_tqdm.write(message)


__all__ = ["ENV", "MODES", "children_to_terminal", "mode", "terminal_stream", "tqdm", "write"]
