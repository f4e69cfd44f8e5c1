"""Names on disk → meaning: case ids (patient, timepoint), modality file tags, and the channel and label names
of a Decathlon / nnU-Net ``dataset.json``.

Case ids of every public BraTS release:

=============  ==========================================  ==================  =========
release        case id                                     patient             timepoint
=============  ==========================================  ==================  =========
2017–2019      ``Brats18_CBICA_ABM_1``, ``BraTS19_2013_0_1``  ``CBICA_ABM``       —
2020           ``BraTS20_Training_001``                    ``Training_001``    —
2021           ``BraTS2021_00000``                         ``00000``           —
2023+          ``BraTS-GLI-00000-000`` (MEN, PED, SSA, MET)  ``00000``           ``000``
Decathlon      ``BRATS_001``                               ``001``             —
=============  ==========================================  ==================  =========

The trailing number of 2017–2019 ids (``_1``) is kept in the id but not read as a timepoint: the releases do
not document it as one. An id in no known naming is its own patient, without timepoint. Patients are numbered
per release: ids of different releases or cohorts with the same number share a patient id (BraTS 2023 GLI did
reuse the 2021 numbers), which keeps a patient's cases together in splits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ..labels import ET, LABEL_NAMES, LABELS_2024, NETC, RC, REGIONS, SNFH
from .cases import MODALITIES, BratsInputError

# ------------------------------------------------------------------------------------------------- case ids

_CASE_NAMINGS: tuple[tuple[str, re.Pattern], ...] = (
    ("2023+", re.compile(r"^BraTS-(?P<cohort>[A-Za-z]+)-(?P<patient>\d+)-(?P<timepoint>\d+)$")),
    ("2021", re.compile(r"^BraTS2021_(?P<patient>\d+)$")),
    ("2020", re.compile(r"^BraTS20_(?P<patient>(?:Training|Validation|Testing)_\d+)$", re.IGNORECASE)),
    ("2017-2019", re.compile(r"^BraTS1[789]_(?P<patient>.+)_(?P<scan>\d+)$", re.IGNORECASE)),
    ("decathlon", re.compile(r"^BRATS_(?P<patient>\d+)$")),
    ("BraTS", re.compile(r"^BraTS\d*_(?P<patient>\d+)$", re.IGNORECASE)),
)


@dataclass(frozen=True)
class CaseName:
    """What a case id says: its naming (``"2023+"``, ``"2021"``, … or ``None``), patient, timepoint, cohort."""

    naming: str | None
    patient: str
    timepoint: str | None = None
    cohort: str | None = None


def parse_case_id(case_id: str) -> CaseName:
    """Patient and timepoint of ``case_id`` in any BraTS naming (see the module docstring).

    >>> parse_case_id("BraTS-MEN-00012-001")
    CaseName(naming='2023+', patient='00012', timepoint='001', cohort='MEN')
    >>> parse_case_id("Brats18_TCIA01_131_1").patient
    'TCIA01_131'
    """
    for naming, pattern in _CASE_NAMINGS:
        match = pattern.match(case_id)
        if match:
            groups = match.groupdict()
            return CaseName(naming, groups["patient"], groups.get("timepoint"), groups.get("cohort"))
    return CaseName(None, case_id)


# ------------------------------------------------------------------------------------------- file name tags

#: 2023+ modality tag → modality (``<case>-t1n.nii.gz``).
TAGS_2023: Mapping[str, str] = {m: m for m in MODALITIES}
#: 2018–2021 modality tag → modality (``<case>_t1ce.nii.gz``).
TAGS_LEGACY: Mapping[str, str] = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}
SEG_TAG = "seg"
#: Separators between the case id and the tag.
TAG_SEPARATORS = ("-", "_")


def split_tag(stem: str) -> tuple[str, str, str] | None:
    """``(prefix, separator, tag)`` if ``stem`` ends in a separator and a modality or ``seg`` tag, else None
    (``BraTS2021_00000_t1ce`` → ``("BraTS2021_00000", "_", "t1ce")``)."""
    for tag in (*TAGS_2023, *TAGS_LEGACY, SEG_TAG):
        for sep in TAG_SEPARATORS:
            if stem.lower().endswith(sep + tag) and len(stem) > len(tag) + 1:
                return stem[: -len(tag) - 1], sep, stem[-len(tag):]
    return None


# ------------------------------------------------------------------------------ dataset.json channel names


def _norm(name: str) -> str:
    """Lower case, British → American spelling, letters and digits only: ``"T2-FLAIR"`` → ``"t2flair"``."""
    name = name.lower().replace("tumour", "tumor").replace("oedema", "edema")
    return re.sub(r"[^a-z0-9]", "", name)


#: Modality → channel names it is recognised by (compared lower-case, letters and digits only).
CHANNEL_NAMES: Mapping[str, tuple[str, ...]] = {
    "t1n": ("t1", "t1w", "t1n", "t1native", "nativet1", "t1pre", "t1precontrast", "t1weighted", "t1wnative",
            "t1noncontrast"),
    "t1c": ("t1c", "t1ce", "t1gd", "t1wgd", "t1wce", "t1post", "t1postcontrast", "t1contrast", "t1gad",
            "t1cgd", "t1wc", "t1cegd", "t1gadolinium", "t1postgd", "t1wpostcontrast", "t1contrastenhanced",
            "contrastenhancedt1"),
    "t2w": ("t2", "t2w", "t2weighted"),
    "t2f": ("flair", "t2flair", "t2f", "t2wflair", "flairt2", "t2weightedflair", "fluidattenuatedinversionrecovery"),
}
_CHANNEL_LOOKUP = {alias: m for m, aliases in CHANNEL_NAMES.items() for alias in aliases}


def modality_of_channel(name: str) -> str | None:
    """The modality (``t1n``…) a ``dataset.json`` channel name stands for, or ``None``."""
    return _CHANNEL_LOOKUP.get(_norm(str(name)))


def channel_modalities(channels: Mapping, source: str) -> dict[str, int]:
    """``dataset.json``'s ``channel_names``/``modality`` ({"0": "FLAIR", …}) → {modality: channel index}.

    Raises:
        BratsInputError: a key that is not a channel index, a name that is no BraTS modality, two channels
            naming one modality, or a modality without channel (each named, with ``source``).
    """
    found: dict[str, int] = {}
    names: dict[int, str] = {}
    for key, name in channels.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise BratsInputError(f"{source}: channel key {key!r} is not a channel index (0, 1, …)") from None
        modality = modality_of_channel(name)
        if modality is None:
            known = "; ".join(f"{m}: {', '.join(a)}" for m, a in CHANNEL_NAMES.items())
            raise BratsInputError(f"{source}: channel {index} {name!r} is not one of the four BraTS modalities "
                                  f"(names understood — {known})")
        if modality in found:
            first = found[modality]
            raise BratsInputError(f"{source}: channels {first} {names[first]!r} and {index} {name!r} both name "
                                  f"{modality}")
        found[modality] = index
        names[index] = name
    missing = [m for m in MODALITIES if m not in found]
    if missing:
        listed = ", ".join(f"{k} {v!r}" for k, v in channels.items())
        raise BratsInputError(f"{source}: no channel for {', '.join(missing)} (channels: {listed or 'none'})")
    return {m: found[m] for m in MODALITIES}


# -------------------------------------------------------------------------------- dataset.json label names

#: 2024 label → label names it is recognised by (compared lower-case, letters and digits only).
LABEL_NAMES_ACCEPTED: Mapping[int, tuple[str, ...]] = {
    0: ("background", "bg", "normal"),
    NETC: ("netc", "ncr", "net", "ncrnet", "necrosis", "necrotic", "necroticcore", "necrotictumorcore",
           "nonenhancing", "nonenhancingtumor", "nonenhancingtumorcore", "necroticnonenhancingtumorcore",
           "necroticandnonenhancingtumorcore", "necrosisandnonenhancingtumor"),
    SNFH: ("snfh", "ed", "edema", "peritumoraledema", "surroundingedema", "flairhyperintensity",
           "surroundingflairhyperintensity", "surroundingnonenhancingflairhyperintensity"),
    ET: ("et", "enhancing", "enhancingtumor", "enhancingtissue", "gdenhancingtumor", "contrastenhancingtumor"),
    RC: ("rc", "resectioncavity", "cavity", "surgicalcavity"),
}
_LABEL_LOOKUP = {alias: label for label, aliases in LABEL_NAMES_ACCEPTED.items() for alias in aliases}

#: Region names (for nnU-Net's region-based ``labels``, e.g. ``"whole tumor": [1, 2, 3]``) → scored region.
REGION_NAMES_ACCEPTED: Mapping[str, tuple[str, ...]] = {
    "WT": ("wt", "wholetumor", "whole"),
    "TC": ("tc", "tumorcore", "core"),
    "ET": LABEL_NAMES_ACCEPTED[ET],
    "NETC": LABEL_NAMES_ACCEPTED[NETC],
    "SNFH": LABEL_NAMES_ACCEPTED[SNFH],
    "RC": LABEL_NAMES_ACCEPTED[RC],
}
_REGION_LOOKUP = {alias: region for region, aliases in REGION_NAMES_ACCEPTED.items() for alias in aliases}


def _known_label_names() -> str:
    return "; ".join(f"{LABEL_NAMES[k]}: {', '.join(v)}" for k, v in LABEL_NAMES_ACCEPTED.items()) + \
        "; regions WT: whole tumor, TC: tumor core"


def _as_value(raw, name: str, source: str) -> int:
    """A label value from JSON (an int, an integral float, or a string of digits), checked to be 0–255."""
    value = None
    if isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    if value is None or not 0 <= value <= 255:
        raise BratsInputError(f"{source}: label {name!r} has value {raw!r}, not an integer 0–255")
    return value


def label_values_from_names(labels: Mapping, source: str) -> dict[int, int]:
    """``dataset.json``'s ``labels`` → {stored value: 2024 label}.

    Both spellings are read: Decathlon / nnU-Net v1 ``{"0": "background", "1": "edema", …}`` (value → name)
    and nnU-Net v2 ``{"background": 0, "edema": 1, …}`` (name → value), including v2's region-based form
    ``{"whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}``: a stored value maps to the
    2024 label that lies in exactly the same listed regions (here 1 → SNFH, 2 → NETC, 3 → ET).

    Raises:
        BratsInputError: a name that is no BraTS label or region, a value that is not an integer, or a value
            no name determines (each named, with ``source``).
    """
    if not isinstance(labels, Mapping) or not labels:
        raise BratsInputError(f"{source}: 'labels' must be a non-empty object")
    if all(isinstance(v, str) for v in labels.values()):  # Decathlon / nnU-Net v1: value → name
        pairs = [(name, _as_value(key, name, source)) for key, name in labels.items()]
    else:  # nnU-Net v2: name → value or list of values
        pairs = list(labels.items())
    direct: dict[int, int] = {}
    regions: dict[str, tuple[int, ...]] = {}
    for name, value in pairs:
        key = _norm(str(name))
        if isinstance(value, (list, tuple)):
            region = _REGION_LOOKUP.get(key)
            if region is None:
                raise BratsInputError(f"{source}: label region {name!r} {list(value)} is not a BraTS region or "
                                      f"label (names understood — {_known_label_names()})")
            regions[region] = tuple(_as_value(v, str(name), source) for v in value)
            continue
        value = _as_value(value, str(name), source)
        label = _LABEL_LOOKUP.get(key)
        if label is None and value == 0:
            label = 0
        if label is None:
            raise BratsInputError(f"{source}: label {name!r} (value {value}) cannot be mapped to a BraTS 2024 "
                                  f"label (names understood — {_known_label_names()})")
        if value in direct and direct[value] != label:
            raise BratsInputError(f"{source}: value {value} is named twice, as different labels")
        direct[value] = label
    # region-based definitions: the 2024 label in exactly the same listed regions
    for value in sorted({v for values in regions.values() for v in values}):
        member = {r for r, values in regions.items() if value in values}
        matches = [lab for lab in LABELS_2024[1:]
                   if {r for r in regions if lab in REGIONS[r]} == member]
        if not matches:
            raise BratsInputError(f"{source}: value {value} lies in regions {sorted(member)}, which no BraTS 2024 "
                                  f"label lies in exactly")
        if len(matches) > 1:
            raise BratsInputError(f"{source}: value {value} lies in regions {sorted(member)}, which do not tell "
                                  f"{' from '.join(LABEL_NAMES[m] for m in matches)} apart")
        if value in direct and direct[value] != matches[0]:
            raise BratsInputError(f"{source}: value {value} is named as label {direct[value]} but its regions "
                                  f"say {matches[0]}")
        direct[value] = matches[0]
    direct.setdefault(0, 0)
    return dict(sorted(direct.items()))
