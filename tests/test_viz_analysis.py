"""Figures of the error analysis: each has a title, axis labels with units, a legend or colour bar naming what
is drawn, and draws the known values it is given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from brats_lib import analysis, viz  # noqa: E402
from brats_lib.labels import ERROR_COLORS, REGION_COLORS  # noqa: E402

SHAPE = (24, 26, 20)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _pair():
    gt = np.zeros(SHAPE, np.uint8)
    gt[6:16, 6:16, 6:14] = 2
    gt[9:13, 9:13, 8:12] = 3
    pred = np.roll(gt, 2, axis=0)
    return pred, gt


def _labels(fig):
    texts = [t.get_text() for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    texts += [t.get_text() for t in fig.texts] + ([fig._suptitle.get_text()] if fig._suptitle else [])
    for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
        texts += [t.get_text() for t in legend.get_texts()]
    return " | ".join(texts)


def test_error_slice_and_confusion():
    pred, gt = _pair()
    image = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    error = analysis.error_map(pred, gt, "WT")
    fig = viz.plot_error_slice(image, error, (1.0, 1.0, 2.0), region="WT", case_id="c")
    text = _labels(fig)
    assert "mm" in text and "FN: false negative" in text and "FP: false positive" in text and "WT errors" in text
    shown = np.asarray(fig.axes[0].images[0].get_array())[..., :3]
    index = int(fig.axes[0].get_title().split()[-1])  # the slice with the most FP + FN voxels
    fp_pixels = np.count_nonzero(viz.display_slice(error, "axial", index) == analysis.ERROR_CODES["FP"])
    grey = viz.normalize(viz.display_slice(image, "axial", index), viz.intensity_window(image))
    expected = 0.4 * grey[..., None] + 0.6 * np.asarray(ERROR_COLORS["FP"])
    assert fp_pixels > 0 and np.count_nonzero(np.all(np.isclose(shown, expected, atol=1e-5), axis=-1)) == fp_pixels
    fig = viz.plot_confusion(analysis.confusion_matrix(pred, gt), voxel_ml=0.002)
    text = _labels(fig)
    assert "true label" in text and "predicted label" in text and "mL" in text
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert len(cells) == 25
    # row SNFH (2), column background (0): the SNFH voxels left behind by the 2-voxel shift, in mL
    missed_snfh = np.count_nonzero((gt == 2) & (pred == 0))
    assert cells[2 * 5 + 0] == f"{missed_snfh * 0.002:.2f}"


def test_projection_and_frequency_figures():
    pred, gt = _pair()
    image = np.ones(SHAPE, np.float32)
    mips = analysis.error_projections(pred, gt, ("WT",))
    anatomy = {p: analysis.anatomy_projection(image, p) for p in analysis.PLANE_AXES}
    fig = viz.plot_error_projections(mips, anatomy, (1.0, 1.0, 1.0), "WT", "c")
    text = _labels(fig)
    assert all(f"{p} MIP" in text for p in ("sagittal", "coronal", "axial")) and "FN somewhere" in text
    freq = analysis.ErrorFrequency(("WT",), SHAPE, np.eye(4))
    freq.add(pred, gt, np.eye(4))
    fig = viz.plot_error_frequency(freq, "WT", image)
    assert "cases with the error along the ray (%)" in [ax.get_ylabel() for ax in fig.axes]
    assert "1 case(s)" in _labels(fig)
    top = max(im.get_array().max() for ax in fig.axes[:6] for im in ax.images[1:])
    assert top == pytest.approx(100.0)  # every error voxel is an error in the one case


def test_boundary_figures():
    pred, gt = _pair()
    distances = analysis.region_boundaries(pred, gt, (1.0, 1.0, 1.0), ("WT", "ET"))
    rows = []
    for model in ("a", "b"):
        for region, bd in distances.items():
            hist = analysis.distance_histogram(bd)
            for lo, hi, area in zip(analysis.HISTOGRAM_EDGES[:-1], analysis.HISTOGRAM_EDGES[1:], hist):
                rows.append({"model": model, "region": region, "bin_lo_mm": lo, "bin_hi_mm": hi, "area_mm2": area})
    fig = viz.plot_boundary_distributions(pd.DataFrame(rows), regions=("WT", "ET"), names={"a": "Model A"})
    text = _labels(fig)
    assert "signed distance (mm); < 0 inside the truth" in text and "boundary area (%)" in text
    assert "Model A" in text
    stats = pd.DataFrame([{"model": "a", "case": "c", "region": r, **analysis.boundary_stats(d)}
                          for r, d in distances.items()])
    fig = viz.plot_boundary_stats(stats)
    assert "bias: mean signed distance (mm)" in _labels(fig)
    signed = analysis.signed_boundary_map(pred > 0, gt > 0)
    fig = viz.plot_boundary_slice(np.ones(SHAPE, np.float32), signed, gt > 0, (1.0, 1.0, 1.0), region="WT")
    text = _labels(fig)
    assert "true WT boundary" in text and "signed distance (mm)" in text
    # cropped to the two boundaries plus the margin, never past the slice; margin_mm=None shows it all
    x0, x1 = fig.axes[0].get_xlim()
    fig = viz.plot_boundary_slice(np.ones(SHAPE, np.float32), signed, gt > 0, (1.0, 1.0, 1.0), margin_mm=1.0)
    cropped = fig.axes[0].get_xlim()
    assert x0 <= cropped[0] < cropped[1] <= x1 and cropped[1] - cropped[0] < x1 - x0
    fig = viz.plot_boundary_slice(np.ones(SHAPE, np.float32), signed, gt > 0, (1.0, 1.0, 1.0), margin_mm=None)
    assert fig.axes[0].get_xlim()[1] - fig.axes[0].get_xlim()[0] >= cropped[1] - cropped[0]


def test_volume_lesion_and_longitudinal_figures():
    pred, gt = _pair()
    errors = pd.concat([analysis.error_table(pred, gt, 0.001, "BraTS-GLI-00001-000").assign(model="a"),
                        analysis.error_table(gt, gt, 0.001, "BraTS-GLI-00001-001").assign(model="a")],
                       ignore_index=True)
    volumes = analysis.volume_agreement(errors)
    fig = viz.plot_volume_agreement(volumes, analysis.bland_altman(volumes), names={"a": "Model A"})
    text = _labels(fig)
    for word in ("true volume (mL)", "predicted volume (mL)", "predicted − true (mL)", "identity", "Model A", "WT"):
        assert word in text
    colours = {tuple(np.round(c[:3], 4)) for col in fig.axes[0].collections for c in col.get_facecolors()}
    assert tuple(np.round(REGION_COLORS["WT"], 4)) in colours  # regions in the house palette
    lesions = analysis.lesion_table(pred, gt, np.eye(4), "c").assign(model="a")
    fig = viz.plot_lesion_detection(analysis.detection_rate(lesions), lesions)
    text = _labels(fig)
    assert "lesions detected (%)" in text and "x (mm, world)" in text and "missed true lesion" in text
    fig = viz.plot_longitudinal(analysis.timepoint_table(volumes), analysis.change_table(volumes))
    text = _labels(fig)
    assert "volume (mL)" in text and "timepoint" in text and "ground truth" in text
    truth_line = fig.axes[0].lines[0]  # patient 00001, WT: the true volumes at timepoints 0 and 1
    np.testing.assert_allclose(truth_line.get_ydata(), [np.count_nonzero(gt) * 0.001] * 2)
