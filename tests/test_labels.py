import re

import numpy as np
import pytest
import torch

from brats_lib import labels


def test_regions_match_brats_2024_definitions():
    assert labels.REGIONS["WT"] == (1, 2, 3)
    assert labels.REGIONS["TC"] == (1, 3)
    assert labels.REGIONS["ET"] == (3,)
    assert labels.REGIONS["NETC"] == (1,)
    assert labels.REGIONS["SNFH"] == (2,)
    assert labels.REGIONS["RC"] == (4,)
    assert labels.REGION_ORDER == ("WT", "TC", "NETC", "SNFH", "ET", "RC")
    assert set(labels.REGION_ORDER) == set(labels.REGIONS)


def test_legacy_conversion_maps_ncr_ed_et():
    legacy = np.array([0, 1, 2, 4, 4, 1], dtype=np.int16)
    np.testing.assert_array_equal(labels.convert_legacy_labels(legacy), [0, 1, 2, 3, 3, 1])
    assert labels.convert_legacy_labels(legacy).dtype == np.uint8


def test_float_maps_with_integer_values_are_accepted():
    seg = np.array([0.0, 1.0, 2.0, 4.0], dtype=np.float32)
    np.testing.assert_array_equal(labels.to_2024(seg, "legacy"), [0, 1, 2, 3])


@pytest.mark.parametrize(
    "values, convention, message",
    [
        ([0, 1, 5], "2024", "unknown label values [5]"),
        ([0, 3], "legacy", "unknown label values [3]"),
        ([0.0, 1.5], "2024", "non-integer"),
        ([0.0, np.nan], "2024", "NaN"),
        ([-1, 0], "2024", "unknown label values [-1]"),
    ],
)
def test_bad_label_values_are_named(values, convention, message):
    with pytest.raises(labels.LabelError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        labels.to_2024(np.array(values), convention, source="case-seg.nii.gz")
    assert "case-seg.nii.gz" in str(info.value)


def test_unknown_convention():
    with pytest.raises(ValueError, match="unknown label convention"):
        labels.to_2024(np.zeros(3, np.uint8), "2017")


@pytest.mark.parametrize("region, expected", [
    ("WT", [0, 1, 1, 1, 0]), ("TC", [0, 1, 0, 1, 0]), ("ET", [0, 0, 0, 1, 0]),
    ("NETC", [0, 1, 0, 0, 0]), ("SNFH", [0, 0, 1, 0, 0]), ("RC", [0, 0, 0, 0, 1]),
])
def test_region_mask_numpy_and_torch(region, expected):
    seg = np.arange(5, dtype=np.uint8)
    np.testing.assert_array_equal(labels.region_mask(seg, region), np.array(expected, bool))
    mask_t = labels.region_mask(torch.arange(5), region)
    assert mask_t.dtype == torch.bool
    assert mask_t.tolist() == [bool(v) for v in expected]


def test_region_masks_and_unknown_region():
    masks = labels.region_masks(np.arange(5))
    assert list(masks) == list(labels.REGION_ORDER)
    with pytest.raises(KeyError, match="unknown region"):
        labels.region_mask(np.arange(5), "XX")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int64, np.float32, np.float64])
@pytest.mark.parametrize(
    "values, convention, unknown",
    [([0, 1, 2, 3, 4], "legacy", [3]), ([4, 0, 6, 2], "2024", [6]), ([0, 2, 200], "2024", [200]),
     ([1, 1, 9, 0], "legacy", [9])],
)
def test_unknown_values_are_found_in_every_dtype_of_a_volume(dtype, values, convention, unknown):
    seg = np.zeros((6, 5, 4), dtype=dtype)
    seg.flat[: len(values)] = values
    with pytest.raises(labels.LabelError, match=re.escape(f"unknown label values {unknown}")):
        labels.to_2024(seg, convention, source="x")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_valid_volumes_pass_in_every_dtype(dtype):
    seg = np.zeros((6, 5, 4), dtype=dtype)
    seg.flat[:4] = [1, 2, 4, 2]
    np.testing.assert_array_equal(labels.to_2024(seg, "legacy").flat[:4], [1, 2, 3, 2])
    np.testing.assert_array_equal(labels.to_2024(seg, "2024").flat[:4], [1, 2, 4, 2])


# ------------------------------------------------------------------------------------ the house palette
def _srgb_to_linear(c):
    c = np.asarray(c, float)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab(linear_rgb):
    """CIE L*a*b* (D65) of linear sRGB."""
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ linear_rgb / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


# Viénot, Brettel & Mollon (1999): dichromat simulation in linear RGB
_SIMULATE = {
    "normal": np.eye(3),
    "deuteranopia": np.array([[0.29275, 0.70725, 0.0], [0.29275, 0.70725, 0.0], [-0.02234, 0.02234, 1.0]]),
    "protanopia": np.array([[0.11238, 0.88762, 0.0], [0.11238, 0.88762, 0.0], [0.00401, -0.00401, 1.0]]),
}


@pytest.mark.parametrize("vision", sorted(_SIMULATE))
def test_label_palette_distinct_for_red_green_colour_blindness(vision):
    from brats_lib.labels import LABEL_COLORS

    labs = {v: _lab(_SIMULATE[vision] @ _srgb_to_linear(c)) for v, c in LABEL_COLORS.items()}
    values = sorted(labs)
    for i, a in enumerate(values):
        for b in values[i + 1:]:
            delta_e = float(np.linalg.norm(labs[a] - labs[b]))
            assert delta_e > 20, f"labels {a} and {b} are {delta_e:.1f} ΔE apart under {vision}"


def test_palette_hex_and_regions():
    from brats_lib import labels

    assert labels.label_hex(labels.NETC) == "#D55E00"
    assert labels.region_hex("RC") == "#0072B2"
    assert set(labels.REGION_COLORS) == set(labels.REGION_ORDER)
    assert labels.REGION_COLORS["ET"] == labels.LABEL_COLORS[labels.ET]
    assert set(labels.ERROR_COLORS) == {"TP", "FP", "FN"}
