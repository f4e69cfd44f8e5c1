"""Where the project's relative paths are anchored.

A notebook runs from ``notebooks/`` in JupyterLab, from the repository root under papermill, or from a
temporary copy under nbval; resolving its relative parameters (``data/synthetic``) against the checkout
makes all three find the same folders.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The BraTS Lab checkout: the first ancestor of the working directory holding ``brats_lib`` and
    ``pyproject.toml``; else the checkout this package is imported from; else the working directory."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "brats_lib").is_dir():
            return folder
    package_parent = Path(__file__).resolve().parents[1]
    if (package_parent / "pyproject.toml").is_file():
        return package_parent
    return here


def resolve_path(path: str | os.PathLike) -> Path:
    """An absolute path as given, a relative one against :func:`project_root`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path
