#!/usr/bin/env python3
"""Execute the numbered notebooks (``notebooks/[0-9][0-9]_*.ipynb``) in order with papermill.

Parameters come from a profile, ``notebooks/profiles/<name>.yml``: a mapping notebook file name →
parameters with a ``_defaults`` section applied to every notebook; only parameters that a notebook defines
in its ``parameters`` cell are passed to it. The kernel runs this interpreter (the project's venv) in the
repository root. Executed copies are written atomically to ``--out`` (default ``book/executed``, ignored by
git), from where the Jupyter Book is built; a failed notebook is saved to ``<out>/.failed/`` for
inspection, its stale executed copy removed, and the exit status is 1.

Usage::

    .venv/bin/python scripts/run_notebooks.py --profile demo [--only 01_eda] [--out book/executed]
    .venv/bin/python scripts/run_notebooks.py --profile demo --prepare-only --out /tmp/nb   # inject only
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PROFILES = NOTEBOOKS / "profiles"
KERNEL_NAME = "brats-lab"
NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")


def numbered_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """``folder/[0-9][0-9]_*.ipynb`` sorted by name."""
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


def _expand(value, where: str):
    if isinstance(value, str):
        expanded = os.path.expandvars(value)
        unset = re.findall(r"\$\{?(\w+)", expanded)
        if unset:
            raise SystemExit(f"profile: {where}: environment variable(s) {', '.join(unset)} not set")
        return expanded
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    return value


def load_profile(profile: str) -> dict:
    """The profile mapping, from a name (``demo``) or a path to a YAML file.

    Several profiles separated by commas are layered, later ones overriding earlier ones per notebook and
    parameter: ``demo,smoke`` is the demo profile with the smoke test's shorter training runs.
    """
    if "," in profile:
        merged: dict = {}
        for part in profile.split(","):
            for key, values in load_profile(part.strip()).items():
                merged[key] = {**merged.get(key, {}), **values}
        return merged
    return _load_one_profile(profile)


def _load_one_profile(profile: str) -> dict:
    import yaml

    path = Path(profile)
    if not path.suffix:
        path = PROFILES / f"{profile}.yml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.yml")))
        raise SystemExit(f"profile {profile!r}: {path} not found (known profiles: {known})")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise SystemExit(f"{path}: expected a mapping of notebook file name -> parameters")
    return {key: dict(value or {}) for key, value in data.items()}


def notebook_parameters(notebook: Path, profile: dict) -> dict:
    """Profile parameters for ``notebook`` restricted to those its ``parameters`` cell defines."""
    import papermill

    defined = set(papermill.inspect_notebook(str(notebook)))
    section = profile.get(notebook.name, profile.get(notebook.stem, {}))
    unknown = sorted(set(section) - defined)
    if unknown:
        print(f"warning: {notebook.name}: profile parameter(s) {unknown} not defined by the notebook, ignored",
              file=sys.stderr)
    merged = {**profile.get("_defaults", {}), **section}
    return {k: _expand(v, f"{notebook.name}.{k}") for k, v in merged.items() if k in defined}


def ensure_kernel() -> str:
    """Install (once) a kernelspec running this interpreter into its prefix; return its name."""
    spec_dir = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec = spec_dir / "kernel.json"
    if not spec.is_file() or sys.executable not in spec.read_text(encoding="utf-8"):
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL_NAME, display_name="BraTS Lab (project venv)", prefix=sys.prefix)
    return KERNEL_NAME


def select(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    if not only:
        return notebooks
    chosen = []
    for name in only:
        stem = name.removesuffix(".ipynb")
        matches = [p for p in notebooks if p.stem == stem or p.stem.startswith(stem + "_") or p.stem[:2] == stem]
        if not matches:
            raise SystemExit(f"--only {name}: no notebook matches (have: {', '.join(p.stem for p in notebooks)})")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def run(notebook: Path, out_dir: Path, parameters: dict, kernel: str, timeout: int | None,
        prepare_only: bool = False) -> float:
    """Execute one notebook into ``out_dir``; return the seconds it took. Raises on failure."""
    import papermill

    target = out_dir / notebook.name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{notebook.stem}.", suffix=".tmp.ipynb", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook), str(tmp), parameters=parameters, kernel_name=kernel, cwd=str(ROOT),
            progress_bar=False, log_output=False, execution_timeout=timeout, prepare_only=prepare_only,
        )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if tmp.exists():
            failed = out_dir / ".failed" / notebook.name
            failed.parent.mkdir(exist_ok=True)
            os.replace(tmp, failed)
        target.unlink(missing_ok=True)
        raise
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo", help="profile name in notebooks/profiles/ or a YAML path")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this notebook (e.g. 01_eda or 01); repeatable")
    parser.add_argument("--out", default="book/executed", help="folder of the executed copies")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds a single cell may run")
    parser.add_argument("--prepare-only", action="store_true",
                        help="write parameterised copies without executing them (e.g. for nbval)")
    parser.add_argument("--keep-going", action="store_true", help="run the next notebooks after a failure")
    args = parser.parse_args(argv)

    profile = load_profile(args.profile)
    notebooks = select(numbered_notebooks(), args.only)
    if not notebooks:
        raise SystemExit(f"no notebooks/[0-9][0-9]_*.ipynb in {NOTEBOOKS}")
    known = {p.name for p in numbered_notebooks()} | {p.stem for p in numbered_notebooks()} | {"_defaults"}
    for key in sorted(set(profile) - known):
        print(f"warning: profile {args.profile}: section {key!r} names no notebook", file=sys.stderr)
    out_dir = Path(args.out)
    out_dir = out_dir if out_dir.is_absolute() else ROOT / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    kernel = ensure_kernel()

    total_start = time.perf_counter()
    failures = []
    verb = "prepared" if args.prepare_only else "executed"
    for notebook in notebooks:
        parameters = notebook_parameters(notebook, profile)
        shown = ", ".join(f"{k}={v!r}" for k, v in parameters.items())
        print(f"[{args.profile}] {notebook.name} ({shown})", flush=True)
        try:
            seconds = run(notebook, out_dir, parameters, kernel, args.timeout, args.prepare_only)
        except Exception as exc:  # papermill's error names the failing cell and the exception
            failures.append(notebook.name)
            print(f"FAILED {notebook.name}: {type(exc).__name__}: {exc}".rstrip(), file=sys.stderr, flush=True)
            print(f"       failed copy: {out_dir / '.failed' / notebook.name}", file=sys.stderr)
            if not args.keep_going:
                break
            continue
        print(f"  {verb} in {seconds:6.1f} s -> {out_dir / notebook.name}", flush=True)
    total = time.perf_counter() - total_start
    print(f"total {total:.1f} s for {len(notebooks)} notebook(s), profile {args.profile}"
          + (f"; FAILED: {', '.join(failures)}" if failures else ""), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
