"""Label conventions and scored regions, in one place.

BraTS 2024 GLI (post-treatment glioma) labels a voxel as

====  =====  =====================================================
  0   —      background
  1   NETC   non-enhancing tumour core
  2   SNFH   surrounding non-enhancing FLAIR hyperintensity
  3   ET     enhancing tissue
  4   RC     resection cavity
====  =====  =====================================================

The BraTS 2018–2021 releases used 1 NCR (→ NETC), 2 ED (→ SNFH) and 4 ET (→ 3); such maps are converted
to the 2024 convention on load by :func:`convert_legacy_labels`.

Scored regions are unions of labels; :data:`REGION_ORDER` is the row order of the official results table.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

BACKGROUND = 0
NETC = 1
SNFH = 2
ET = 3
RC = 4

#: Label value → short name, BraTS 2024 GLI convention.
LABEL_NAMES: Mapping[int, str] = {0: "background", NETC: "NETC", SNFH: "SNFH", ET: "ET", RC: "RC"}

#: Label value → long name, for figure legends.
LABEL_DESCRIPTIONS: Mapping[int, str] = {
    0: "background",
    NETC: "non-enhancing tumour core",
    SNFH: "surrounding FLAIR hyperintensity",
    ET: "enhancing tissue",
    RC: "resection cavity",
}

#: The house palette (Okabe–Ito, readable with red–green colour blindness), RGB in 0–1. Every figure, widget
#: and table of the project takes its label and region colours from here and nowhere else.
def _hex(code: str) -> tuple[float, float, float]:
    return tuple(int(code[i:i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


#: Label → RGB colour: NETC vermillion, SNFH bluish green, ET yellow, RC blue.
LABEL_COLORS: Mapping[int, tuple[float, float, float]] = {
    NETC: _hex("#D55E00"),
    SNFH: _hex("#009E73"),
    ET: _hex("#F0E442"),
    RC: _hex("#0072B2"),
}

#: Region → RGB colour: single-label regions take their label's colour; WT reddish purple, TC orange.
REGION_COLORS: Mapping[str, tuple[float, float, float]] = {
    "WT": _hex("#CC79A7"),
    "TC": _hex("#E69F00"),
    "NETC": LABEL_COLORS[NETC],
    "SNFH": LABEL_COLORS[SNFH],
    "ET": LABEL_COLORS[ET],
    "RC": LABEL_COLORS[RC],
}

#: Error-map class → RGB colour: true positive grey-white, false positive orange, false negative sky blue.
ERROR_COLORS: Mapping[str, tuple[float, float, float]] = {
    "TP": _hex("#BBBBBB"),
    "FP": _hex("#E69F00"),
    "FN": _hex("#56B4E9"),
}


def label_hex(label: int) -> str:
    """``#rrggbb`` of a label's house colour (for HTML tables and widgets)."""
    return "#" + "".join(f"{round(c * 255):02X}" for c in LABEL_COLORS[label])


def region_hex(region: str) -> str:
    """``#rrggbb`` of a region's house colour."""
    return "#" + "".join(f"{round(c * 255):02X}" for c in REGION_COLORS[region])


#: Label values allowed in a 2024-convention map.
LABELS_2024: tuple[int, ...] = (0, NETC, SNFH, ET, RC)

#: Label values allowed in a BraTS 2018–2021 map (1 NCR, 2 ED, 4 ET).
LABELS_LEGACY: tuple[int, ...] = (0, 1, 2, 4)

#: Legacy (2018–2021) label → 2024 label.
LEGACY_TO_2024: Mapping[int, int] = {0: 0, 1: NETC, 2: SNFH, 4: ET}

#: Scored region → the 2024 labels it unites.
REGIONS: Mapping[str, tuple[int, ...]] = {
    "WT": (NETC, SNFH, ET),
    "TC": (NETC, ET),
    "NETC": (NETC,),
    "SNFH": (SNFH,),
    "ET": (ET,),
    "RC": (RC,),
}

#: Row order of the official BraTS 2024 GLI results table.
REGION_ORDER: tuple[str, ...] = ("WT", "TC", "NETC", "SNFH", "ET", "RC")

#: Convention names accepted by the loaders. A mapping {stored value: 2024 label} is accepted too (the labels of
#: a Decathlon or nnU-Net ``dataset.json``, built by :mod:`brats_lib.io`).
CONVENTIONS = ("2024", "legacy")


class LabelError(ValueError):
    """A label map holds values its convention does not allow."""


def _convention_name(convention) -> str:
    if isinstance(convention, Mapping):
        return "dataset.json mapping " + str({int(k): int(v) for k, v in sorted(convention.items())})
    return f"{convention}"


def allowed_labels(convention) -> tuple[int, ...]:
    """Label values a map in ``convention`` (``"2024"``, ``"legacy"`` or a {stored: 2024} mapping) may hold."""
    if isinstance(convention, Mapping):
        return tuple(sorted(int(k) for k in convention))
    if convention == "2024":
        return LABELS_2024
    if convention == "legacy":
        return LABELS_LEGACY
    raise ValueError(f"unknown label convention {convention!r}; expected one of {CONVENTIONS}")


def check_labels(seg: np.ndarray, convention="2024", source: str = "label map") -> None:
    """Raise :class:`LabelError` naming ``source`` if ``seg`` holds a value outside ``convention``.

    Non-integer values (e.g. 1.5 in a float map) count as unknown labels.
    """
    allowed = allowed_labels(convention)
    seg = np.asarray(seg)
    if seg.dtype.kind == "f" and seg.size and np.isfinite(seg).all() and (seg == np.rint(seg)).all() \
            and -(2**15) <= seg.min() and seg.max() < 2**15:
        seg = seg.astype(np.int16)  # integer-valued floats (common in label files): the integer path
    if seg.dtype.kind in "ui" and seg.size:
        # Integer maps: min/max and one comparison per disallowed value in between, instead of a sort.
        low, high = int(seg.min()), int(seg.max())
        if low >= 0 and high - low <= 16:
            values = np.array([v for v in range(low, high + 1)
                               if v in (low, high) or v not in allowed and (seg == v).any()])
        else:
            values = np.unique(seg)
    else:
        values = np.unique(seg)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            raise LabelError(f"{source}: label map contains NaN or infinite values")
        non_integer = values[values != np.round(values)]
        if non_integer.size:
            raise LabelError(f"{source}: non-integer label values {non_integer[:5].tolist()}")
    unknown = sorted(set(values.astype(np.int64).tolist()) - set(allowed))
    if unknown:
        raise LabelError(
            f"{source}: unknown label values {unknown} for the {_convention_name(convention)} convention "
            f"(allowed: {list(allowed)})"
        )


def _lookup_table(mapping: Mapping[int, int]) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


_LEGACY_LUT = _lookup_table(LEGACY_TO_2024)


def to_2024(seg: np.ndarray, convention="2024", source: str = "label map") -> np.ndarray:
    """Validate ``seg`` in ``convention`` and return it as a uint8 map in the 2024 convention.

    Args:
        seg: integer or integer-valued float label map, any shape.
        convention: ``"2024"`` (kept as is), ``"legacy"`` (1→1, 2→2, 4→3), or a mapping {stored value:
            2024 label} (a Decathlon or nnU-Net ``dataset.json``'s labels, see :mod:`brats_lib.io`).
        source: what to name in an error message (usually the file path).
    Returns:
        uint8 array of the same shape with values in :data:`LABELS_2024`.
    """
    check_labels(seg, convention, source)
    seg8 = np.asarray(seg).astype(np.uint8, copy=False)
    if isinstance(convention, Mapping):
        for dst in convention.values():
            if int(dst) not in LABELS_2024:
                raise ValueError(f"{source}: mapping target {dst} is not a 2024 label {list(LABELS_2024)}")
        return _lookup_table(convention)[seg8]
    if convention == "legacy":
        return _LEGACY_LUT[seg8]
    return seg8


def convert_legacy_labels(seg: np.ndarray) -> np.ndarray:
    """BraTS 2018–2021 labels (1 NCR, 2 ED, 4 ET) → 2024 labels (1 NETC, 2 SNFH, 3 ET), uint8."""
    return to_2024(seg, "legacy")


def region_mask(seg, region: str):
    """Boolean mask of ``region`` (a key of :data:`REGIONS`) in a 2024-convention map.

    Works on numpy arrays and torch tensors alike and keeps the input's device.
    """
    try:
        labels = REGIONS[region]
    except KeyError:
        raise KeyError(f"unknown region {region!r}; expected one of {list(REGIONS)}") from None
    mask = seg == labels[0]
    for label in labels[1:]:
        mask = mask | (seg == label)
    return mask


def region_masks(seg, regions=REGION_ORDER) -> dict:
    """``{region: boolean mask}`` for each region in ``regions``."""
    return {region: region_mask(seg, region) for region in regions}
