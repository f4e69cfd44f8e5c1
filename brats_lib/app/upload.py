"""Uploaded files → a private folder → one validated case.

An upload is either four NIfTI volumes (plus an optional ground-truth label map) or one zip of a case folder.
Files keep their names inside a per-upload folder of the session's private :class:`Workspace`, so that every
message names the file the user chose. Case discovery and every image check (NIfTI or not, corrupt or
truncated, 3D, shapes and affines, label grid and values) are :mod:`brats_lib.io`'s; this module adds only
what an upload brings: the number of files, the total size, modality names that follow no layout (the user
picks them), and the safety of a zip (no path traversal, no nested archives, a bounded unpacked size).

Every fault raises :class:`brats_lib.io.BratsInputError` with a one-line message.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping, Sequence

from ..io import (LEGACY_MODALITY_NAMES, MODALITIES, BratsInputError, Case, LoadedCase, discover_cases,
                  load_case, nifti_stem)

#: Largest upload (sum of the files) and largest unpacked zip, in bytes (500 MB).
DEFAULT_MAX_UPLOAD_BYTES = 500 * 10**6

#: Most entries a zip may hold (a case has five files; folders and macOS metadata add a few).
MAX_ZIP_ENTRIES = 256

#: What a file can be: a modality or the ground truth.
TAGS: tuple[str, ...] = (*MODALITIES, "seg")

#: Words in a free-form file name that suggest its modality (checked in this order, lower case).
_GUESSES: tuple[tuple[str, str], ...] = (
    ("seg", "seg"), ("label", "seg"), ("mask", "seg"), ("flair", "t2f"), ("t2f", "t2f"), ("t1ce", "t1c"),
    ("t1c", "t1c"), ("t1gd", "t1c"), ("gad", "t1c"), ("t1n", "t1n"), ("t1", "t1n"), ("t2w", "t2w"), ("t2", "t2w"),
)

_TEMP_PREFIX = "brats-app-"


@dataclass(frozen=True)
class UploadedFile:
    """One uploaded file: its name (no folders) and its bytes."""

    name: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)

    @classmethod
    def from_widget(cls, value: Iterable[Mapping]) -> list["UploadedFile"]:
        """The files of an ``ipywidgets.FileUpload`` value (dicts with ``name`` and ``content``)."""
        return [cls(PurePosixPath(str(v["name"]).replace("\\", "/")).name, bytes(v["content"])) for v in value]


class ModalityChoiceNeeded(BratsInputError):
    """The file names do not say which file is which modality; the user has to choose.

    Attributes:
        names: the NIfTI file names, in upload order.
        guesses: name → best-guess tag (``t1n`` … ``seg``) or ``""``.
    """

    def __init__(self, names: Sequence[str], guesses: Mapping[str, str]):
        self.names = list(names)
        self.guesses = dict(guesses)
        super().__init__("the file names do not follow the BraTS 2024 (-t1n/-t1c/-t2w/-t2f) or 2018–2021 "
                         "(_t1/_t1ce/_t2/_flair) naming: choose each file's modality")


class Workspace:
    """A private temporary folder for one app session (one kernel), removed when it ends.

    The folder is created with mode 0700 under the system temporary directory; it is removed by
    :meth:`close`, when the object is collected, or at interpreter exit; and, should the process be killed
    (a kernel that does not stop in time gets SIGKILL), by a small watchdog process that waits on a pipe held
    only by this process. Folders left behind anyway are swept when a new workspace starts.
    """

    def __init__(self, parent: str | os.PathLike | None = None, watchdog: bool = True):
        sweep_stale_workspaces(parent)
        self.path = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", dir=parent))
        self._count = 0
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)
        self._watch_fd = _start_watchdog(self.path) if watchdog else None

    def new_folder(self, kind: str = "upload") -> Path:
        """A fresh sub-folder ``<kind>-N``; earlier ``<kind>-*`` folders are removed (one upload at a time)."""
        for old in self.path.glob(f"{kind}-*"):
            shutil.rmtree(old, ignore_errors=True)
        self._count += 1
        folder = self.path / f"{kind}-{self._count}"
        folder.mkdir()
        return folder

    def relative(self, message: str) -> str:
        """``message`` with this workspace's folders removed from paths, leaving the uploaded names."""
        return re.sub(re.escape(str(self.path)) + r"/(?:[^/:\n]+/)*", "", str(message))

    def close(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive


_WATCHDOG = "import os, shutil, sys\nos.read(int(sys.argv[1]), 1)\nshutil.rmtree(sys.argv[2], ignore_errors=True)\n"


def _start_watchdog(path: Path) -> int | None:
    """Start a detached process that removes ``path`` once this process has ended, however it ends.

    It blocks reading a pipe whose only write end this process holds (non-inheritable): when this process
    exits or is killed, the read returns and the folder is removed. Returns the write end (kept open).
    """
    try:
        read_end, write_end = os.pipe()
        subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(read_end), str(path)], pass_fds=(read_end,),
                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        os.close(read_end)
        return write_end
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_workspaces(parent: str | os.PathLike | None = None) -> list[Path]:
    """Remove ``brats-app-<pid>-*`` folders of processes that no longer exist; returns what was removed."""
    root = Path(parent or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"{_TEMP_PREFIX}*-*"):
        pid = folder.name[len(_TEMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) and folder.is_dir():
            try:
                if folder.stat().st_uid == os.getuid():
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            except OSError:
                pass
    return removed


# ------------------------------------------------------------------------------------------------- names


def parse_name(name: str) -> tuple[str, str, str] | None:
    """``(case_id, tag, layout)`` of a file named in a BraTS layout, else ``None``.

    ``BraTS-GLI-00001-000-t1c.nii.gz`` → ``("BraTS-GLI-00001-000", "t1c", "2024")``;
    ``BraTS2021_00002_flair.nii.gz`` → ``("BraTS2021_00002", "t2f", "legacy")``.
    """
    stem = nifti_stem(name)
    if stem is None:
        return None
    legacy = {v: k for k, v in LEGACY_MODALITY_NAMES.items()}
    for separator, names, layout in (("-", {t: t for t in TAGS}, "2024"), ("_", {**legacy, "seg": "seg"}, "legacy")):
        case_id, _, suffix = stem.rpartition(separator)
        if case_id and suffix in names:
            return case_id, names[suffix], layout
    return None


def guess_tag(name: str) -> str:
    """Best guess of a free-form file name's tag (``t1n`` … ``seg``), or ``""``."""
    parsed = parse_name(name)
    if parsed:
        return parsed[1]
    lower = (nifti_stem(name) or name).lower()
    return next((tag for word, tag in _GUESSES if word in lower), "")


# ---------------------------------------------------------------------------------------------------- zip


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _check_member(archive: str, info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The safe relative path of a zip member, ``None`` for entries to skip; raises for unsafe ones."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in path.parts:
        raise BratsInputError(f"{archive}: unsafe path {info.filename!r} in the zip (absolute or with '..')")
    if _is_symlink(info):
        raise BratsInputError(f"{archive}: {info.filename!r} is a symbolic link; zips of plain files only")
    if info.is_dir() or not path.parts:
        return None
    if path.parts[0] == "__MACOSX" or path.name.startswith("."):
        return None  # macOS resource forks and hidden files
    if path.name.lower().endswith((".zip", ".tar", ".tgz", ".tar.gz", ".7z", ".rar")):
        raise BratsInputError(f"{archive}: nested archive {info.filename!r}; zip the case folder itself")
    return path


def extract_zip(data: bytes, dest: str | os.PathLike, max_unpacked_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
                archive: str = "upload.zip") -> list[Path]:
    """Safely unpack a zip held in memory into ``dest``.

    Rejects, before writing anything: a file that is not a zip, encrypted entries, absolute or ``..`` paths,
    symbolic links, nested archives, more than :data:`MAX_ZIP_ENTRIES` entries, and a declared unpacked size
    over ``max_unpacked_bytes``. While unpacking, the bytes actually written are counted against the same
    limit (a member that lies about its size stops the extraction).

    Returns:
        the extracted files.
    Raises:
        BratsInputError: any of the faults above, naming ``archive``.
    """
    import io as _io

    dest = Path(dest)
    try:
        zf = zipfile.ZipFile(_io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise BratsInputError(f"{archive}: not a valid zip archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise BratsInputError(f"{archive}: {len(infos)} entries; a case zip holds a handful of files")
        members = []
        for info in infos:
            if info.flag_bits & 0x1:
                raise BratsInputError(f"{archive}: {info.filename!r} is encrypted")
            path = _check_member(archive, info)
            if path is not None:
                members.append((info, path))
        declared = sum(info.file_size for info, _ in members)
        if declared > max_unpacked_bytes:
            raise BratsInputError(f"{archive}: unpacks to {declared / 1e6:.1f} MB, over the limit of "
                                  f"{max_unpacked_bytes / 1e6:.0f} MB")
        written, out = 0, []
        for info, path in members:
            target = dest.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > max_unpacked_bytes:
                            raise BratsInputError(f"{archive}: unpacks to more than the limit of "
                                                  f"{max_unpacked_bytes / 1e6:.0f} MB")
                        dst.write(chunk)
            except BratsInputError:
                raise
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
                raise BratsInputError(f"{archive}: cannot unpack {info.filename!r} ({exc})") from exc
            out.append(target)
        if not out:
            raise BratsInputError(f"{archive}: the zip is empty")
    return out


# -------------------------------------------------------------------------------------------- assembling


def _case_from_tags(folder: Path, tags: Mapping[Path, str], case_id: str, layout: str) -> Case:
    """A :class:`Case` from files whose tags the user chose (or the names gave outside a BraTS folder name)."""
    by_tag: dict[str, list[Path]] = {}
    for path, tag in tags.items():
        if tag not in TAGS:
            raise BratsInputError(f"{path.name}: choose its modality ({', '.join(TAGS)})")
        by_tag.setdefault(tag, []).append(path)
    for tag, paths in by_tag.items():
        if len(paths) > 1:
            raise BratsInputError(f"{folder}: duplicated {tag!r} file: " + ", ".join(p.name for p in paths))
    missing = [m for m in MODALITIES if m not in by_tag]
    if missing:
        raise BratsInputError(f"{folder}: missing modality file(s): {', '.join(missing)}")
    seg = by_tag.get("seg", [None])[0]
    return Case(case_id, case_id, None, layout, {m: by_tag[m][0] for m in MODALITIES}, seg)


def _no_case_found(exc: BratsInputError) -> bool:
    """Whether discovery failed because the folder holds no case at all (not because a case is malformed)."""
    return "no BraTS case" in str(exc)


def _common_case_id(names: Sequence[str]) -> str:
    stems = [(nifti_stem(n) or n) for n in names]
    prefix = os.path.commonprefix(stems).rstrip("-_. ")
    return prefix or "uploaded-case"


def _assemble_files(paths: Sequence[Path], folder: Path, choices: Mapping[str, str] | None) -> Case:
    """A case from loose NIfTI files in ``folder`` (their names, or the user's ``choices`` name → tag)."""
    names = [p.name for p in paths]
    if choices:
        tags = {p: choices.get(p.name, "") for p in paths}
        parsed = [parse_name(n) for n in names]
        layout = "legacy" if all(p and p[2] == "legacy" for p in parsed) else "2024"
        ids = {p[0] for p in parsed if p}
        case_id = ids.pop() if len(ids) == 1 else _common_case_id(names)
        return _case_from_tags(folder, tags, case_id, layout)
    parsed = [parse_name(n) for n in names]
    ids = {p[0] for p in parsed if p}
    if not all(parsed) or len(ids) != 1:
        raise ModalityChoiceNeeded(names, {n: guess_tag(n) for n in names})
    case_id = ids.pop()
    case_dir = folder / case_id
    case_dir.mkdir(exist_ok=True)
    for path in paths:
        if path.parent != case_dir:
            path.rename(case_dir / path.name)
    try:
        cases = discover_cases(folder)  # io's checks: duplicated or missing modalities
    except BratsInputError as exc:
        if not _no_case_found(exc):
            raise
        # names in a layout but a case id outside it (e.g. "patient7_t1.nii.gz"): their tags are clear
        layout = parsed[0][2]
        return _case_from_tags(case_dir, {case_dir / n: p[1] for n, p in zip(names, parsed)}, case_id, layout)
    return cases[0]


def stage_upload(files: Sequence[UploadedFile], folder: str | os.PathLike,
                 max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, choices: Mapping[str, str] | None = None) -> Case:
    """Write an upload into ``folder`` (empty, private) and return the case it holds.

    Args:
        files: four NIfTI files (+ optional ground truth ``…-seg``/``…_seg``), or one ``.zip`` of a case folder
            in the 2024 or 2018–2021 layout (or of the loose files).
        folder: where to write (e.g. :meth:`Workspace.new_folder`).
        max_bytes: limit on the upload's total size and on the zip's unpacked size.
        choices: file name → tag (``t1n`` … ``seg``) when the names follow no layout.
    Returns:
        the case, found by :func:`brats_lib.io.discover_cases` where the names follow a layout.
    Raises:
        ModalityChoiceNeeded: names that do not say the modality (the UI asks, then calls again with choices).
        BratsInputError: wrong number or kind of files, over the size limit, an unsafe zip, a missing or
            duplicated modality.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = list(files)
    if not files:
        raise BratsInputError("no file uploaded")
    total = sum(f.size for f in files)
    if total > max_bytes:
        raise BratsInputError(f"upload of {total / 1e6:.1f} MB is over the limit of {max_bytes / 1e6:.0f} MB")
    zips = [f for f in files if f.name.lower().endswith(".zip")]
    if zips:
        if len(files) != 1:
            raise BratsInputError(f"upload one zip on its own, or four NIfTI files; got {len(files)} files "
                                  f"({', '.join(f.name for f in files)})")
        unpacked = folder / "unzipped"
        extracted = extract_zip(zips[0].content, unpacked, max_bytes, archive=zips[0].name)
        try:
            cases = discover_cases(unpacked)
        except BratsInputError as exc:
            if not _no_case_found(exc):
                raise
            niftis = [p for p in extracted if nifti_stem(p.name) is not None]
            if not niftis:
                raise BratsInputError(f"{zips[0].name}: no NIfTI files (.nii, .nii.gz) in the zip") from None
            if len(niftis) not in (4, 5):
                raise BratsInputError(f"{zips[0].name}: expected one case folder or 4 NIfTI files (+ optional "
                                      f"ground truth), found {len(niftis)} NIfTI files") from None
            flat = folder / "files"
            flat.mkdir()
            moved = [p.rename(flat / p.name) for p in niftis]
            return _assemble_files(moved, flat, choices)
        if len(cases) != 1:
            raise BratsInputError(f"{zips[0].name}: holds {len(cases)} cases "
                                  f"({', '.join(c.case_id for c in cases[:4])}…); upload one case")
        return cases[0]
    not_nifti = [f.name for f in files if nifti_stem(f.name) is None]
    if not_nifti:
        raise BratsInputError(f"{not_nifti[0]}: not a NIfTI file (expected .nii or .nii.gz) or a .zip")
    if len(files) not in (4, 5):
        raise BratsInputError(f"expected 4 NIfTI files (t1n, t1c, t2w, t2f) and optionally a ground truth, or "
                              f"one zip; got {len(files)} file(s)")
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise BratsInputError(f"{twice[0]}: the same file name was uploaded twice")
    flat = folder / "files"
    flat.mkdir()
    paths = []
    for f in files:
        path = flat / f.name
        path.write_bytes(f.content)
        paths.append(path)
    return _assemble_files(paths, flat, choices)


def load_upload(case: Case) -> LoadedCase:
    """:func:`brats_lib.io.load_case` (all of its checks): the case's images and optional ground truth."""
    return load_case(case)
