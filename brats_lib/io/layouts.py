"""Case discovery: every public BraTS release as it sits on disk, through one function, :func:`discover_cases`.

Layouts read under a dataset root, at any depth, case by case:

* **BraTS case folders**, every release: a folder is a case when its NIfTI files (``.nii`` or ``.nii.gz``) are
  named ``<folder name><- or _><modality>`` — recognised by the files it holds, not by a pattern of its name.
  The modality names say the convention: 2023+ names ``t1n t1c t2w t2f`` (GLI, MEN, PED, SSA, MET; labels in
  the 2024 numbering) or 2018–2021 names ``t1 t1ce t2 flair`` (labels 1/2/4, converted on load). The label is
  ``<case>_seg``/``<case>-seg``; failing that, the one other NIfTI file in the folder whose name contains
  ``seg`` (BraTS 2020's case 355 ships ``W39_1998.09.19_Segm.nii``). Other files named ``<case>_<tag>`` are
  kept as :attr:`Case.extra_paths` (e.g. ``pred``).
* **Medical Segmentation Decathlon** (``Task01_BrainTumour``): ``dataset.json`` beside ``imagesTr``/``imagesTs``/
  ``labelsTr``; one 4D image per case (``imagesTr/BRATS_001.nii.gz``), the channel order read from
  ``dataset.json``'s ``modality`` (``FLAIR, T1w, t1gd, T2w`` → t2f, t1n, t1c, t2w) and the label meaning from
  its ``labels`` (1 edema → SNFH, 2 non-enhancing tumour → NETC, 3 enhancing tumour → ET).
* **nnU-Net raw**: the same folders with one file per channel (``imagesTr/<case>_0000.nii.gz`` …), channels
  mapped by ``dataset.json``'s ``channel_names`` and labels by its ``labels`` (plain or region-based).

Pointing at ``imagesTr``/``labelsTr`` itself reads that part of its dataset. A root holding several layouts
is read case by case; it is refused, with the reason, when one case id is found twice, when one case folder
mixes 2023+ and 2018–2021 file names, or when one Decathlon/nnU-Net case is stored both as a 4D file and as
channel files. The case id is the folder name (BraTS) or the image name without channel suffix; patient and
timepoint come from :func:`brats_lib.io.naming.parse_case_id`.

Labels of the 2023+ cohorts are read in the 2024 GLI numbering (0–4), which GLI, MEN, MET, SSA and the 2023
PED release use; a pediatric release numbered 1 ET, 2 NET, 3 CC, 4 ED is not told apart by its file names.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .cases import MODALITIES, BratsInputError, Case, strip_nifti_suffix
from .naming import (SEG_TAG, TAG_SEPARATORS, TAGS_2023, TAGS_LEGACY, channel_modalities, label_values_from_names,
                     parse_case_id, split_tag)

#: Image folder → label folder of a Decathlon / nnU-Net dataset.
SPLIT_FOLDERS = {"imagesTr": "labelsTr", "imagesTs": "labelsTs"}
_LABEL_FOLDERS = {label: image for image, label in SPLIT_FOLDERS.items()}
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")

#: What :func:`discover_cases` tries, in the words of its error message.
LAYOUTS_TRIED: tuple[str, ...] = (
    "BraTS 2023+ case folders <case>/<case>-t1n|-t1c|-t2w|-t2f[-seg].nii[.gz] (GLI, MEN, PED, SSA, MET)",
    "BraTS 2018-2021 case folders <case>/<case>_t1|_t1ce|_t2|_flair[_seg].nii[.gz]",
    "Decathlon Task01_BrainTumour: dataset.json + imagesTr/<case>.nii.gz (4D) + labelsTr/<case>.nii.gz",
    "nnU-Net raw: dataset.json + imagesTr/<case>_0000.nii.gz … _0003 + labelsTr/<case>.nii.gz",
)


def _describe(case: Case) -> str:
    return {"2024": "BraTS 2023+ names", "legacy": "BraTS 2018-2021 names", "msd": "Decathlon 4D",
            "nnunet": "nnU-Net raw"}.get(case.layout, case.layout)


def nifti_paths(folder: Path) -> list[Path]:
    """The NIfTI files directly in ``folder``, sorted; hidden files (``.x``, macOS ``._x``) skipped."""
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and strip_nifti_suffix(p.name) is not None and p.is_file())


# ----------------------------------------------------------------------------------------- BraTS case folders


def _missing_files(name: str, sep: str, suffix: str, tags) -> str:
    return ", ".join(f"{name}{sep}{tag}{suffix}" for tag in tags)


def _lone_label(folder: Path, expected: str, unnamed: list[Path]) -> Path | None:
    """The label file of a case folder without ``<case>_seg``: the one other NIfTI file whose name has ``seg``."""
    candidates = [p for p in unnamed if "seg" in p.name.lower()]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise BratsInputError(
            f"{folder}: no {expected}, and {len(candidates)} files could be the label "
            f"({', '.join(p.name for p in candidates)}): rename the label file to {expected}"
        )
    if unnamed:
        raise BratsInputError(
            f"{folder}: no label file {expected} (nor a single other file with 'seg' in its name), and "
            f"{', '.join(p.name for p in unnamed)} is not named after the case: rename the label file to "
            f"{expected}, or move the other file(s) out"
        )
    return None


def brats_case_folder(folder: Path, files: list[Path] | None = None, require_images: bool = True) -> Case | None:
    """The :class:`Case` of a BraTS case folder, or ``None`` if ``folder`` is not one.

    Args:
        folder: a folder; it is a case when its NIfTI files are named ``<folder name><- or _><modality>``.
        files: its NIfTI files, if already listed.
        require_images: if False, a folder whose name is a BraTS case id and that holds only ``<case>_seg``
            is a label-only case.
    Raises:
        BratsInputError: a case folder with a missing or duplicated modality file, 2023+ and 2018–2021 names
            mixed, or a label that cannot be told apart (each named).
    """
    name = folder.name
    files = nifti_paths(folder) if files is None else files
    tagged: dict[str, list[Path]] = {}
    separators: list[str] = []
    unnamed: list[Path] = []
    for path in files:
        stem = strip_nifti_suffix(path.name)
        if len(stem) > len(name) + 1 and stem.startswith(name) and stem[len(name)] in TAG_SEPARATORS:
            tagged.setdefault(stem[len(name) + 1:].lower(), []).append(path)
            separators.append(stem[len(name)])
        elif stem != name:
            unnamed.append(path)
    new = [t for t in TAGS_2023 if t in tagged]
    old = [t for t in TAGS_LEGACY if t in tagged]
    parsed = parse_case_id(name)
    if new and old:
        raise BratsInputError(
            f"{folder}: mixes 2023+ file names ({', '.join(tagged[t][0].name for t in new)}) with 2018-2021 "
            f"names ({', '.join(tagged[t][0].name for t in old)}); a case folder uses one naming"
        )
    if not new and not old and (SEG_TAG not in tagged or parsed.naming is None):
        return None  # not a case folder
    for tag, paths in tagged.items():
        if len(paths) > 1:
            raise BratsInputError(f"{folder}: duplicated {tag!r} file: " + ", ".join(p.name for p in paths))
    if not new and not old:  # a label-only folder
        layout = "2024" if parsed.naming == "2023+" else "legacy"
        if require_images:
            tags = TAGS_2023 if layout == "2024" else TAGS_LEGACY
            sep = "-" if layout == "2024" else "_"
            raise BratsInputError(f"{folder}: missing modality file(s): {_missing_files(name, sep, '.nii.gz', tags)}")
        return Case(name, parsed.patient, parsed.timepoint, layout, {}, tagged[SEG_TAG][0])
    layout, tags = ("2024", TAGS_2023) if new else ("legacy", TAGS_LEGACY)
    first = tagged[(new or old)[0]][0]
    sep = max(set(separators), key=separators.count)
    suffix = first.name[len(strip_nifti_suffix(first.name)):]
    missing = [t for t in tags if t not in tagged]
    if missing:
        raise BratsInputError(f"{folder}: missing modality file(s): {_missing_files(name, sep, suffix, missing)}")
    image_paths = {tags[t]: tagged[t][0] for t in tags}
    image_paths = {m: image_paths[m] for m in MODALITIES}
    if SEG_TAG in tagged:
        seg = tagged[SEG_TAG][0]
    else:
        seg = _lone_label(folder, f"{name}{sep}seg{suffix}", unnamed)
    extra = {tag: paths[0] for tag, paths in tagged.items() if tag not in tags and tag != SEG_TAG}
    return Case(name, parsed.patient, parsed.timepoint, layout, image_paths, seg, extra)


# ----------------------------------------------------------------------------- Decathlon and nnU-Net datasets


def dataset_json_of(folder: str | Path) -> Path | None:
    """The ``dataset.json`` of a Decathlon / nnU-Net dataset ``folder`` (the dataset root, or its ``imagesTr``,
    ``imagesTs``, ``labelsTr``, ``labelsTs``), or ``None`` if ``folder`` is not part of one."""
    folder = Path(folder)
    if (folder / "dataset.json").is_file() and any((folder / d).is_dir() for d in (*SPLIT_FOLDERS, *_LABEL_FOLDERS)):
        return folder / "dataset.json"
    if folder.name in SPLIT_FOLDERS or folder.name in _LABEL_FOLDERS:
        if (folder.parent / "dataset.json").is_file():
            return folder.parent / "dataset.json"
    return None


def _read_dataset_json(path: Path) -> dict:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BratsInputError(f"{path}: cannot be read as JSON ({exc})") from exc
    if not isinstance(spec, dict):
        raise BratsInputError(f"{path}: expected a JSON object, got {type(spec).__name__}")
    ending = spec.get("file_ending")
    if ending is not None and strip_nifti_suffix("x" + str(ending)) is None:
        raise BratsInputError(f"{path}: file_ending {ending!r}: only NIfTI images (.nii, .nii.gz) are read")
    return spec


def dataset_json_cases(root: Path, require_images: bool = True, splits=("imagesTr", "imagesTs")) -> list[Case]:
    """The cases of a Decathlon or nnU-Net raw dataset ``root`` (which holds ``dataset.json``).

    Raises:
        BratsInputError: unreadable ``dataset.json``, a channel or label name that cannot be mapped, a case
            with a missing channel file, a label without image (when ``require_images``), or a case stored
            both as a 4D file and as channel files.
    """
    json_path = root / "dataset.json"
    spec = _read_dataset_json(json_path)
    modalities: dict[str, int] | None = None
    label_values: dict[int, int] | None = None
    cases = []
    for image_folder in splits:
        image_dir, label_dir = root / image_folder, root / SPLIT_FOLDERS[image_folder]
        images = nifti_paths(image_dir) if image_dir.is_dir() else []
        labels = {strip_nifti_suffix(p.name): p for p in nifti_paths(label_dir)} if label_dir.is_dir() else {}
        whole: dict[str, Path] = {}
        per_channel: dict[str, dict[int, Path]] = {}
        for path in images:
            stem = strip_nifti_suffix(path.name)
            match = _CHANNEL_FILE.match(stem)
            if match:
                per_channel.setdefault(match["case"], {})[int(match["channel"])] = path
            else:
                whole[stem] = path
        both = sorted(set(whole) & set(per_channel))
        if both:
            raise BratsInputError(
                f"{image_dir}: case {both[0]} is stored both as one 4D file ({whole[both[0]].name}) and as "
                f"channel files ({', '.join(p.name for p in per_channel[both[0]].values())}); keep one"
            )
        if images and modalities is None:
            channels = spec.get("channel_names", spec.get("modality"))
            if not isinstance(channels, dict):
                raise BratsInputError(f"{json_path}: no 'channel_names' (nnU-Net) or 'modality' (Decathlon) "
                                      f"object naming the image channels")
            modalities = channel_modalities(channels, str(json_path))
        if labels and label_values is None:
            if "labels" not in spec:
                raise BratsInputError(f"{json_path}: no 'labels' object naming the label values")
            label_values = label_values_from_names(spec["labels"], str(json_path))
        for case_id in sorted(set(whole) | set(per_channel) | set(labels)):
            seg = labels.get(case_id)
            parsed = parse_case_id(case_id)
            if case_id in whole:
                path = whole[case_id]
                cases.append(Case(case_id, parsed.patient, parsed.timepoint, "msd", {m: path for m in MODALITIES},
                                  seg, {}, dict(modalities), label_values))
            elif case_id in per_channel:
                files = per_channel[case_id]
                wanted = set(modalities.values())
                suffix = next(iter(files.values())).name[len(strip_nifti_suffix(next(iter(files.values())).name)):]
                missing = sorted(wanted - set(files))
                if missing:
                    raise BratsInputError(
                        f"{image_dir}: case {case_id} lacks channel file(s) "
                        f"{', '.join(f'{case_id}_{i:04d}{suffix}' for i in missing)} "
                        f"(dataset.json names {len(wanted)} channels)"
                    )
                extra = sorted(set(files) - wanted)
                if extra:
                    raise BratsInputError(f"{files[extra[0]]}: channel {extra[0]} is not among dataset.json's "
                                          f"channels {sorted(wanted)}")
                cases.append(Case(case_id, parsed.patient, parsed.timepoint, "nnunet",
                                  {m: files[i] for m, i in modalities.items()}, seg, {}, {}, label_values))
            else:
                if require_images:
                    raise BratsInputError(f"{seg}: no image for case {case_id} in {image_dir} (expected "
                                          f"{case_id}.nii.gz or {case_id}_0000.nii.gz …)")
                layout = "nnunet" if "channel_names" in spec else "msd"
                cases.append(Case(case_id, parsed.patient, parsed.timepoint, layout, {}, seg, {}, {},
                                  label_values))
    return cases


# ---------------------------------------------------------------------------------------------- discovery


@dataclass
class _Seen:
    """What a walk saw, for the message when no case is found."""

    folders: int = 0
    files: int = 0
    json_files: int = 0
    hints: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def unrecognised(self, root: Path, folder: Path, files: list[Path]) -> None:
        for path in files:
            tagged = split_tag(strip_nifti_suffix(path.name))
            if tagged and tagged[0] != folder.name:
                self.hints.append(f"{path.relative_to(root)} is named after "
                                  f"{tagged[0]!r}, not after its folder {folder.name!r} (each case needs its own "
                                  f"folder, named like its files)")
                return
        self.examples.extend(str(p.relative_to(root)) for p in files[: 3 - len(self.examples)])

    def message(self, root: Path) -> str:
        text = (f"{root}: no BraTS cases found; layouts tried: {'; '.join(LAYOUTS_TRIED)}; found: "
                f"{self.folders} folder(s), {self.files} NIfTI file(s), {self.json_files} dataset.json")
        if self.hints:
            more = f" (and {len(self.hints) - 2} more)" if len(self.hints) > 2 else ""
            return text + "; " + "; ".join(self.hints[:2]) + more
        if self.examples:
            return text + f" (e.g. {', '.join(self.examples[:3])}), none in a layout above"
        return text


def _walk(root: Path):
    """``os.walk`` in sorted order, into symlinked folders too (each real folder once), skipping hidden ones."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield Path(dirpath), dirnames, filenames


def discover_cases(root: str | Path, require_images: bool = True) -> list[Case]:
    """Find every case under ``root`` in any layout of the module docstring (any depth), sorted by case id.

    This is the one discovery of the project: ``brats preprocess``, ``train`` (its ``data_dir``), ``predict``,
    ``evaluate --gt``, the volume report and the app all read data folders through it.

    Args:
        root: dataset folder (or a Decathlon / nnU-Net ``imagesTr``/``labelsTr`` folder).
        require_images: if False, label-only cases are returned too (empty ``image_paths``), e.g. a
            ground-truth folder for evaluation or a ``labelsTr`` folder.

    Raises:
        BratsInputError: ``root`` is missing; holds no case (the message lists what was found and the layouts
            tried); a case is malformed (missing, duplicated or mixed-naming files, unmappable ``dataset.json``
            names); or one case id is found twice.
    """
    root = Path(root)
    if not root.is_dir():
        raise BratsInputError(f"{root}: dataset folder does not exist")
    seen = _Seen()
    cases: list[Case] = []
    split_of = dataset_json_of(root)
    if split_of is not None and split_of.parent != root:  # root is imagesTr/labelsTr/… of a dataset
        image_folder = root.name if root.name in SPLIT_FOLDERS else _LABEL_FOLDERS[root.name]
        cases = dataset_json_cases(root.parent, require_images, (image_folder,))
        seen.folders, seen.files, seen.json_files = 1, len(nifti_paths(root)), 1
    else:
        for folder, dirnames, filenames in _walk(root):
            seen.folders += 1
            if "dataset.json" in filenames:
                seen.json_files += 1
                if dataset_json_of(folder) is not None:
                    cases.extend(dataset_json_cases(folder, require_images))
                    seen.files += sum(len(nifti_paths(folder / d)) for d in dirnames
                                      if d in SPLIT_FOLDERS or d in _LABEL_FOLDERS)
                    dirnames[:] = [d for d in dirnames if d not in SPLIT_FOLDERS and d not in _LABEL_FOLDERS]
                else:
                    seen.hints.append(f"{(folder / 'dataset.json').relative_to(root)} has no imagesTr, imagesTs "
                                      f"or labelsTr folder beside it")
            files = sorted(folder / f for f in filenames
                           if not f.startswith(".") and strip_nifti_suffix(f) is not None)
            if not files:
                continue
            seen.files += len(files)
            case = brats_case_folder(folder, files, require_images)
            if case is not None:
                cases.append(case)
            else:
                seen.unrecognised(root, folder, files)
    if not cases:
        raise BratsInputError(seen.message(root))
    by_id: dict[str, Case] = {}
    for case in cases:
        if case.case_id in by_id:
            other = by_id[case.case_id]
            raise BratsInputError(
                f"{root}: case {case.case_id} found twice, in {other.folder} ({_describe(other)}) and in "
                f"{case.folder} ({_describe(case)}); keep one copy, or point at one of the folders"
            )
        by_id[case.case_id] = case
    return sorted(cases, key=lambda c: c.case_id)
