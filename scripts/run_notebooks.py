#!/usr/bin/env python3
"""Execute the numbered notebooks (``notebooks/[0-9][0-9]_*.ipynb``) in order with papermill.

Parameters come from a profile, ``notebooks/profiles/<name>.yml``: a mapping notebook file name →
parameters with a ``_defaults`` section applied to every notebook; only parameters that a notebook defines
in its ``parameters`` cell are passed to it. The kernel runs this interpreter (the project's venv) in the
repository root. Executed copies are written atomically to ``--out`` (default ``book/executed``, ignored by
git), from where the Jupyter Book is built; a failed notebook is saved to ``<out>/.failed/`` for
inspection, its stale executed copy removed, and the exit status is 1.

For the book (the default; ``--interactive`` or ``--prepare-only`` turn it off) each notebook that defines a
``book`` parameter gets ``book=True`` (widgets that need a kernel become static panels), and the kernels run
with ``BRATS_PROGRESS=terminal`` (``brats_lib.progress``): progress bars and epoch logs go to this terminal,
not into the executed notebooks. In every executed copy the notebook's own ``parameters`` cell and papermill's
``injected-parameters`` cell are tagged ``remove-cell`` and followed by one small table of the values the run
used (tag ``brats-parameters``); ``<out>/_book_info.md`` lists the executed chapters and the profile for the
book's intro page.

Usage::

    .venv/bin/python scripts/run_notebooks.py --profile demo [--only 01_eda] [--out book/executed]
    .venv/bin/python scripts/run_notebooks.py --profile demo --prepare-only --out /tmp/nb   # inject only
"""

from __future__ import annotations

import argparse
import json
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


def in_book(notebook: Path) -> bool:
    """False for a notebook whose metadata says ``"brats": {"in_book": false}`` (the Voilà app: its upload and
    segmentation controls need a live kernel, so a static page of it would be a page of inert controls)."""
    meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {}).get("brats", {})
    return bool(meta.get("in_book", True))


def profiles_of(notebook: Path) -> list[str] | None:
    """The profiles a notebook belongs to (metadata ``"brats": {"profiles": [...]}``), or None (every profile).

    A chapter that reads results too costly for the demo (notebook 12 reads a real-data cross-validation of about
    an hour) names its profile; a profile run leaves it out unless the profile is named there or ``--only``
    names the notebook."""
    meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {}).get("brats", {})
    profiles = meta.get("profiles")
    return None if profiles is None else [str(p) for p in profiles]


def runs_under(notebook: Path, profile_name: str) -> bool:
    """Whether a profile run (``demo``, ``demo,smoke``, …) includes ``notebook`` (:func:`profiles_of`)."""
    profiles = profiles_of(notebook)
    return profiles is None or bool(set(profiles) & set(profile_name.split(",")))


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


def notebook_parameters(notebook: Path, profile: dict, book: bool = False) -> dict:
    """Profile parameters for ``notebook`` restricted to those its ``parameters`` cell defines; with ``book``,
    plus ``book=True`` for a notebook that defines a ``book`` parameter."""
    import papermill

    defined = set(papermill.inspect_notebook(str(notebook)))
    section = profile.get(notebook.name, profile.get(notebook.stem, {}))
    unknown = sorted(set(section) - defined)
    if unknown:
        print(f"warning: {notebook.name}: profile parameter(s) {unknown} not defined by the notebook, ignored",
              file=sys.stderr)
    merged = {**profile.get("_defaults", {}), **section}
    if book:
        merged[BOOK_PARAMETER] = True
    return {k: _expand(v, f"{notebook.name}.{k}") for k, v in merged.items() if k in defined}


BOOK_PARAMETER = "book"
PARAMETERS_TABLE_TAG = "brats-parameters"
BOOK_INFO = "_book_info.md"


def _literal(source: str):
    """The Python value of a parameter default's source text (the text itself if it is not a literal)."""
    import ast

    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source


def _cell_text(value) -> str:
    """A value as Python source text, safe inside a Markdown table's inline code."""
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text.replace("|", "\\|").replace("`", "'")


def parameters_markdown(defaults: dict, parameters: dict, profile_name: str | None, per_row: int = 2) -> str:
    """A small Markdown table of the values a run used, ``per_row`` ``name = value`` cells per row: the
    notebook's defaults overridden by ``parameters`` (the ``book`` switch left out); values the profile set are
    in bold, the others are the notebook's defaults."""
    source = f"profile `{profile_name}`" if profile_name else "papermill"
    cells = []
    for name, info in defaults.items():
        if name == BOOK_PARAMETER:
            continue
        if name in parameters:
            cells.append(f"**`{name} = {_cell_text(parameters[name])}`**")
        else:
            cells.append(f"`{name} = {_cell_text(_literal(info['default']))}`")
    cells += [" "] * (-len(cells) % per_row)
    rows = ["| " + " | ".join(cells[i:i + per_row]) + " |" for i in range(0, len(cells), per_row)]
    title = (f"**Parameters of this run** — bold: set by the {source}; the others: the notebook's defaults "
             "(`notebooks/profiles/` or papermill `-p` change them)")
    return "\n".join([title, "", "| " + " | ".join(["parameter = value"] * per_row) + " |",
                      "|" + "---|" * per_row, *rows])


def finish_for_book(path: Path, defaults: dict, parameters: dict, profile_name: str | None) -> None:
    """Hide the parameters cells of an executed notebook and add one table of the values used, in place."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if PARAMETERS_TABLE_TAG not in c.get("metadata", {}).get("tags", [])]
    last = None
    for index, cell in enumerate(nb.cells):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            if "remove-cell" not in tags:
                tags.append("remove-cell")
            last = index
    if last is not None:
        table = nbformat.v4.new_markdown_cell(parameters_markdown(defaults, parameters, profile_name))
        table.metadata["tags"] = [PARAMETERS_TABLE_TAG]
        nb.cells.insert(last + 1, table)
    nbformat.write(nb, path)


def _summary_line(nb) -> tuple[str, str]:
    """(title, one-line summary) of a notebook: its first ``#`` heading and ``metadata.brats.summary`` (else the
    first sentence after the heading)."""
    import re as _re

    title, summary = "", nb.get("metadata", {}).get("brats", {}).get("summary", "")
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.strip().splitlines()
        if lines and lines[0].startswith("# "):
            title = lines[0][2:].strip()
            if not summary:
                body = " ".join(line.strip() for line in lines[1:] if line.strip())
                summary = _re.split(r"(?<=[.:;])\s", body, maxsplit=1)[0] if body else ""
            break
    return title, summary


def palette_markdown() -> list[str]:
    """Markdown table lines of the house palette: each label and region with a swatch of its colour."""
    sys.path.insert(0, str(ROOT))
    from brats_lib.labels import LABEL_DESCRIPTIONS, LABEL_NAMES, REGION_ORDER, REGIONS, label_hex, region_hex

    def swatch(colour: str) -> str:
        return (f'<span style="display:inline-block;width:2.5em;height:1em;background:{colour};'
                f'border:1px solid #333"></span>')

    lines = ["| colour | label or region | meaning |", "| --- | --- | --- |"]
    for value in (1, 2, 3, 4):
        lines.append(f"| {swatch(label_hex(value))} | {LABEL_NAMES[value]} ({value}) | {LABEL_DESCRIPTIONS[value]} |")
    for region in REGION_ORDER:
        if len(REGIONS[region]) > 1:
            members = " ∪ ".join(LABEL_NAMES[v] for v in REGIONS[region])
            lines.append(f"| {swatch(region_hex(region))} | {region} | region {members} |")
    return lines


def write_book_info(out_dir: Path, profile_name: str) -> Path:
    """``<out>/_book_info.md``: the profile the book was built with and one line per executed chapter."""
    import datetime

    import nbformat

    lines = [f"This book was built from notebooks executed with the **`{profile_name}`** profile "
             f"(`notebooks/profiles/`), on {datetime.date.today().isoformat()}.", "", "| chapter | what it shows |",
             "| --- | --- |"]
    for path in numbered_notebooks(out_dir):
        nb = nbformat.read(path, as_version=4)
        title, summary = _summary_line(nb)
        meta = nb.get("metadata", {}).get("papermill", {})
        if meta.get("exception"):
            continue
        lines.append(f"| {{doc}}`{title} </book/executed/{path.stem}>` | {summary.replace('|', '/')} |")
    lines += ["", "The house palette of labels and regions (`brats_lib.labels`), used by every figure and widget:", ""]
    lines += palette_markdown()
    target = out_dir / BOOK_INFO
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def chosen_notebooks(notebooks: list[Path], profile: dict, profile_name: str, only: list[str] | None,
                     book: bool) -> list[Path]:
    """The notebooks a run executes: those named by ``--only`` (whatever their profile); otherwise the book's
    chapters (``book``) that belong to the profile (:func:`runs_under`) and, for a profile without ``_defaults``
    (``study``, ``real``: studies of named chapters), only the notebooks it has a section for."""
    chosen = select(notebooks, only)
    if only:
        return chosen
    if book:  # the book's run leaves out what is not a chapter
        chosen = [p for p in chosen if in_book(p)]
    chosen = [p for p in chosen if runs_under(p, profile_name)]
    if "_defaults" not in profile:
        chosen = [p for p in chosen if p.name in profile or p.stem in profile]
    return chosen


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
        prepare_only: bool = False, profile_name: str | None = None) -> float:
    """Execute one notebook into ``out_dir``; return the seconds it took. Raises on failure."""
    import papermill

    defaults = papermill.inspect_notebook(str(notebook))

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
        if not prepare_only:
            finish_for_book(tmp, defaults, parameters, profile_name)
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
    parser.add_argument("--interactive", action="store_true",
                        help="not for the book: book=False, progress bars in the notebooks (as in JupyterLab)")
    args = parser.parse_args(argv)
    book = not (args.interactive or args.prepare_only)
    if book:
        os.environ["BRATS_PROGRESS"] = "terminal"  # inherited by the kernels: bars and logs stay out of the book

    profile = load_profile(args.profile)
    notebooks = chosen_notebooks(numbered_notebooks(), profile, args.profile, args.only, book)
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
        parameters = notebook_parameters(notebook, profile, book=book)
        shown = ", ".join(f"{k}={v!r}" for k, v in parameters.items())
        print(f"[{args.profile}] {notebook.name} ({shown})", flush=True)
        try:
            seconds = run(notebook, out_dir, parameters, kernel, args.timeout, args.prepare_only, args.profile)
        except Exception as exc:  # papermill's error names the failing cell and the exception
            failures.append(notebook.name)
            print(f"FAILED {notebook.name}: {type(exc).__name__}: {exc}".rstrip(), file=sys.stderr, flush=True)
            print(f"       failed copy: {out_dir / '.failed' / notebook.name}", file=sys.stderr)
            if not args.keep_going:
                break
            continue
        print(f"  {verb} in {seconds:6.1f} s -> {out_dir / notebook.name}", flush=True)
    if book:
        print(f"chapters and profile for the intro page -> {write_book_info(out_dir, args.profile)}", flush=True)
    total = time.perf_counter() - total_start
    print(f"total {total:.1f} s for {len(notebooks)} notebook(s), profile {args.profile}"
          + (f"; FAILED: {', '.join(failures)}" if failures else ""), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
