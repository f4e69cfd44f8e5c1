"""Figures and the slice browser (brats_lib.viz) on small arrays with known answers."""

import io as _io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from brats_lib import eda, viz  # noqa: E402
from brats_lib.io import MODALITIES, load_case, discover_cases  # noqa: E402

SHAPE = (10, 12, 6)
SPACING = (1.0, 1.0, 3.0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _volume() -> np.ndarray:
    return np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)


def test_take_slice_per_plane():
    vol = _volume()
    np.testing.assert_array_equal(viz.take_slice(vol, "axial", 2), vol[:, :, 2])
    np.testing.assert_array_equal(viz.take_slice(vol, "coronal", 3), vol[:, 3, :])
    np.testing.assert_array_equal(viz.take_slice(vol, "sagittal", 4), vol[4, :, :])
    assert viz.take_slice(vol, "axial", 0).shape == (10, 12)
    assert viz.take_slice(vol, "coronal", 0).shape == (10, 6)
    assert viz.take_slice(vol, "sagittal", 0).shape == (12, 6)
    with pytest.raises(ValueError, match="unknown plane"):
        viz.take_slice(vol, "oblique", 0)
    with pytest.raises(IndexError):
        viz.take_slice(vol, "axial", 6)


def test_display_slice_puts_first_axis_across_and_last_index_on_top():
    vol = _volume()
    shown = viz.display_slice(vol, "axial", 1)
    assert shown.shape == (12, 10)  # rows: y, columns: x
    assert shown[0, 0] == vol[0, 11, 1]  # top-left is x=0, y=max
    assert shown[-1, -1] == vol[9, 0, 1]
    assert viz.slice_spacing(SPACING, "axial") == (1.0, 1.0)
    assert viz.slice_spacing(SPACING, "coronal") == (3.0, 1.0)  # rows along z (3 mm), columns along x
    assert viz.slice_extent((6, 10), (3.0, 1.0)) == (0.0, 10.0, 0.0, 18.0)


def test_overlay_rgba_colours_per_label():
    image = np.array([[0.0, 50.0], [100.0, 100.0]], dtype=np.float32)
    label = np.array([[0, 1], [2, 4]], dtype=np.uint8)
    opaque = viz.overlay_rgba(image, label, alpha=1.0, window=(0.0, 100.0))
    assert opaque.shape == (2, 2, 4) and opaque.dtype == np.float32
    np.testing.assert_allclose(opaque[0, 0], [0.0, 0.0, 0.0, 1.0])               # background: grey
    np.testing.assert_allclose(opaque[0, 1, :3], viz.LABEL_COLORS[1])            # NETC vermillion
    np.testing.assert_allclose(opaque[1, 0, :3], viz.LABEL_COLORS[2])            # SNFH bluish green
    np.testing.assert_allclose(opaque[1, 1, :3], viz.LABEL_COLORS[4])            # RC blue
    half = viz.overlay_rgba(image, label, alpha=0.5, window=(0.0, 100.0))
    np.testing.assert_allclose(half[0, 1, :3], 0.5 * 0.5 + 0.5 * np.array(viz.LABEL_COLORS[1]), rtol=1e-6)
    none = viz.overlay_rgba(image, label, alpha=0.0, window=(0.0, 100.0))
    np.testing.assert_allclose(none[..., 0], [[0.0, 0.5], [1.0, 1.0]])
    np.testing.assert_allclose(none[..., 3], 1.0)
    with pytest.raises(ValueError):
        viz.overlay_rgba(image, label[:1])


def test_label_rgba_and_colours():
    rgba = viz.label_rgba(np.array([[0, 3]], dtype=np.uint8), alpha=0.6)
    np.testing.assert_allclose(rgba[0, 0], 0.0)
    np.testing.assert_allclose(rgba[0, 1], [*viz.LABEL_COLORS[3], 0.6], rtol=1e-6)
    assert len({tuple(c) for c in viz.LABEL_COLORS.values()}) == 4
    names = [h.get_label() for h in viz.legend_handles()]
    assert [n.split(" ")[0] for n in names] == ["NETC", "SNFH", "ET", "RC"]


def test_normalize_window():
    image = np.array([0.0, 10.0, 20.0, 30.0], dtype=np.float32)
    np.testing.assert_allclose(viz.normalize(image, (10.0, 20.0)), [0.0, 0.0, 1.0, 1.0])
    lo, hi = viz.intensity_window(np.array([0, 0, 1, 2, 3, 4, 5], dtype=np.float32), (0, 100))
    assert (lo, hi) == (1.0, 5.0)  # zeros (background) are ignored


def test_montage_shape_and_placement():
    tiles = [np.full((3, 4), i, dtype=np.float32) for i in range(5)]
    grid = viz.montage(tiles, ncols=3, pad=1, fill=-1)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 2)
    assert grid[0, 0] == 0 and grid[0, 5] == 1 and grid[4, 0] == 3 and grid[4, 5] == 4
    assert grid[3, 0] == -1 and grid[4, 10] == -1  # padding row, empty sixth tile
    rgba = viz.montage([np.zeros((2, 2, 4))] * 4, ncols=2)
    assert rgba.shape == (4, 4, 4)
    assert viz.montage(tiles[:2], ncols=6).shape == (3, 8)


def test_informative_slices_span_the_label():
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[2:5, 3:9, 1:4] = 2
    assert viz.informative_slices(label, "axial", 3) == [1, 2, 3]
    assert viz.informative_slices(label, "coronal", 2) == [3, 8]
    assert viz.informative_slices(label, "sagittal", 10) == [2, 3, 4]
    label[3, 4, 2] = 1
    label[3, 5, 2] = 1
    assert viz.largest_label_slice(label, "axial") in (1, 2, 3)
    assert viz.largest_label_slice(np.zeros(SHAPE), "axial") is None


# --------------------------------------------------------------------------- figures and browser on files


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for n in range(2):
        case_id = f"BraTS-GLI-0000{n}-000"
        folder = root / case_id
        folder.mkdir()
        affine = np.diag([-SPACING[0], SPACING[1], SPACING[2], 1.0])
        for channel, modality in enumerate(MODALITIES):
            data = (rng.random(SHAPE) * 100 + channel).astype(np.float32)
            nib.save(nib.Nifti1Image(data, affine), folder / f"{case_id}-{modality}.nii.gz")
        label = np.zeros(SHAPE, dtype=np.uint8)
        label[3:7, 4:8, 1:5] = 2
        label[4:6, 5:7, 2:4] = 3
        label[2, 2, 2] = 1
        label[8, 10, 0] = 4
        nib.save(nib.Nifti1Image(label, affine), folder / f"{case_id}-seg.nii.gz")
    return root


def test_summary_plots_label_axes_with_units(tiny_dataset: Path):
    tables = eda.dataset_tables(tiny_dataset, n_per_region=20)
    ax = viz.plot_label_volumes(tables["volumes"])
    assert ax.get_ylabel() == "volume (mL)" and ax.get_xlabel() == "region"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["WT", "TC", "NETC", "SNFH", "ET", "RC"]
    # a few cases: no quartile boxes, a median bar per region (at the median of the table)
    assert not ax.patches and "median" in ax.get_title()
    bars = ax.collections[-1].get_segments()
    medians = tables["volumes"].groupby("region")["volume_ml"].median()
    assert [seg[0][1] for seg in bars] == pytest.approx([medians[r] for r in ("WT", "TC", "NETC", "SNFH", "ET", "RC")])
    many = pd.concat([tables["volumes"].assign(case_id=lambda t, k=k: t["case_id"] + f"-{k}") for k in range(5)])
    assert viz.plot_label_volumes(many).patches  # ≥ 10 cases: boxes
    ax = viz.plot_intensity_distributions(tables["intensities"])
    assert "z-score" in ax.get_ylabel() and ax.get_xlabel() == "modality"
    assert ax.get_legend() is not None


def test_overlay_figures(tiny_dataset: Path):
    loaded = load_case(discover_cases(tiny_dataset)[0])
    fig = viz.plot_overlay_montage(loaded, n_slices=4, ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4
    assert visible[-1].get_xlabel() == "mm" and visible[0].get_ylabel() == "mm"
    assert [t.get_text().split(" ")[0] for t in fig.legends[0].get_texts()] == ["NETC", "SNFH", "ET", "RC"]
    # physical extent: the axial slice is 10 × 12 mm
    assert visible[0].images[0].get_extent() == [0.0, 10.0, 0.0, 12.0]
    fig = viz.plot_case_overlay(loaded, plane="coronal")
    assert len(fig.axes) == 5
    assert fig.axes[0].images[0].get_extent() == [0.0, 10.0, 0.0, 18.0]  # x 10 mm across, z 6 × 3 mm up


def test_render_slice_png_keeps_the_physical_aspect(tiny_dataset: Path):
    loaded = load_case(discover_cases(tiny_dataset)[0])
    png = viz.render_slice_png(loaded, "coronal", 5, "t2f", alpha=1.0)
    image = Image.open(_io.BytesIO(png))
    assert image.format == "PNG" and image.size == (10, 18)  # 6 slices × 3 mm tall
    assert Image.open(_io.BytesIO(viz.render_slice_png(loaded, "axial", 2))).size == (10, 12)
    pixels = np.asarray(image)
    shown = viz.display_slice(loaded.label, "coronal", 5)
    row, col = np.argwhere(shown == 3)[0]
    np.testing.assert_array_equal(pixels[row * 3, col], np.round(np.array(viz.LABEL_COLORS[3]) * 255))


def test_slice_browser_controls_and_slicing(tiny_dataset: Path):
    import ipywidgets as widgets

    browser = viz.SliceBrowser(tiny_dataset, n_slices=3)
    assert isinstance(browser, widgets.VBox)
    assert browser.case_dropdown.options == ("BraTS-GLI-00000-000", "BraTS-GLI-00001-000")
    assert browser.plane_buttons.options == ("axial", "coronal", "sagittal")
    assert browser.modality_dropdown.value == "t2f"
    assert 0.0 <= browser.opacity_slider.value <= 1.0
    # axial: slices evenly spread over the label (z 0..4), one PNG per slice, slider ↔ stack linked
    assert browser.indices == [0, 2, 4]
    assert len(browser.stack.children) == 3
    assert all(isinstance(c, widgets.Image) and c.value[:4] == b"\x89PNG" for c in browser.stack.children)
    assert browser.stack.selected_index == browser.slice_slider.index
    assert browser._link.source == (browser.slice_slider, "index")
    assert browser._link.target == (browser.stack, "selected_index")
    loaded = browser.load("BraTS-GLI-00000-000")
    for plane, expected in (("axial", loaded.image[3][:, :, 2]), ("coronal", loaded.image[3][:, 2, :]),
                            ("sagittal", loaded.image[3][2, :, :])):
        np.testing.assert_array_equal(browser.slice_2d(plane, 2), expected)
    np.testing.assert_array_equal(browser.slice_2d("axial", 1, "t1n"), loaded.image[0][:, :, 1])
    # a new plane re-renders the stack and the slider options
    browser.plane_buttons.value = "sagittal"
    assert browser.indices == viz.informative_slices(loaded.label, "sagittal", 3, loaded.image)
    assert [v for _, v in browser.slice_slider.options] == browser.indices
    assert len(browser.stack.children) == len(browser.indices)
    np.testing.assert_array_equal(browser.slice_2d(), loaded.image[3][browser.current_index, :, :])
    # opacity re-renders the same slices with other pixels; the selected slice is kept
    before = [c.value for c in browser.stack.children]
    index = browser.current_index
    browser.opacity_slider.value = 1.0
    assert browser.current_index == index
    assert [c.value for c in browser.stack.children] != before
    browser.case_dropdown.value = "BraTS-GLI-00001-000"
    assert "BraTS-GLI-00001-000" in browser.status.value
    browser.close()


def _write_prediction(folder: Path, case_dir: Path, shift: int) -> np.ndarray:
    seg = nib.load(case_dir / f"{case_dir.name}-seg.nii.gz")
    label = np.roll(np.asarray(seg.dataobj), shift, axis=0)
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(label, seg.affine), folder / f"{case_dir.name}.nii.gz")
    return label


def test_slice_browser_models_layers_scores_and_static_view(tiny_dataset: Path, tmp_path: Path):
    import ipywidgets as widgets
    import pandas as pd

    case = tiny_dataset / "BraTS-GLI-00000-000"
    _write_prediction(tmp_path / "a", case, 0)  # perfect
    _write_prediction(tmp_path / "b", case, 1)  # shifted by one voxel
    scores = pd.DataFrame([{"model": m, "case": case.name, "region": r, "LesionWise_Score_Dice": d,
                            "LesionWise_Score_HD95": 1.0} for m, d in (("a", 1.0), ("b", 0.25)) for r in
                           ("WT", "TC", "NETC", "SNFH", "ET", "RC")])
    browser = viz.SliceBrowser(tiny_dataset, n_slices=3, predictions={"a": tmp_path / "a", "b": tmp_path / "b"},
                               scores=scores, layer="error map", region="WT", names={"a": "Model A"})
    assert browser.shown_models == ["a", "b"]
    assert all(len(s.children) == 3 for s in (browser.stack, *browser.model_stacks))
    assert [link.target[0] for link in browser._model_links] == browser.model_stacks  # slider drives every panel
    assert "Model A" in browser.panel_titles[1].value and "error map (WT)" in browser.panel_titles[2].value
    assert "0.25" in browser.scores_html.value and "Model A" in browser.scores_html.value
    assert "FN: false negative" in browser.legend.value
    perfect, shifted = (s.children[browser.slice_slider.index].value for s in browser.model_stacks)
    assert perfect != shifted  # the shifted model shows FP and FN colours
    browser.layer_dropdown.value = "boundary distance"
    assert "under-segmentation" in browser.legend.value
    browser.model_dropdowns[1].value = "—"
    assert browser.shown_models == ["a"] and browser._panels[2].layout.display == "none"
    # an empty stack is unlinked (in the browser an index set on it breaks the links after it)
    assert browser._model_links[1] is None and browser.model_stacks[1].selected_index is None
    assert browser._model_links[0].target[0] is browser.model_stacks[0]
    browser.case_dropdown.value = "BraTS-GLI-00001-000"  # no prediction for this case: a blank panel, noted
    assert "no prediction" in browser.panel_titles[1].value and "no scores" in browser.scores_html.value
    browser.close()

    static = viz.SliceBrowser(tiny_dataset, n_slices=3, predictions={"a": tmp_path / "a"}, static=True)
    shown = static.children
    assert static.static_panel in shown and static.slice_slider in shown
    assert not any(isinstance(w, widgets.HBox) and static.case_dropdown in w.children for w in shown)
    assert "Static view" in static.static_panel.value and "JupyterLab" in static.static_panel.value
    assert static._link.target == (static.stack, "selected_index")
    assert static._model_links[1] is None  # one model: the second, empty panel is not linked
    static.close()
    plain = viz.SliceBrowser(tiny_dataset, n_slices=3, static=True)  # no predictions (notebook 01)
    assert plain._model_links == [None, None]
    plain.close()


def test_layer_rgba_colours():
    image = np.zeros((4, 4), np.float32)
    errors = np.array([[0, 1, 2, 3]] * 4, np.uint8)
    rgba = viz.layer_rgba(image, "error map", errors, alpha=1.0, window=(0.0, 1.0))
    np.testing.assert_allclose(rgba[0, 2, :3], viz.ERROR_COLORS["FP"], atol=1e-6)
    np.testing.assert_allclose(rgba[0, 3, :3], viz.ERROR_COLORS["FN"], atol=1e-6)
    distances = np.full((4, 4), np.nan, np.float32)
    distances[1, 1], distances[1, 2] = -5.0, 5.0
    truth = np.zeros((4, 4), bool)
    truth[2:, :] = True
    rgba = viz.layer_rgba(image, "boundary distance", distances, window=(0.0, 1.0), truth2d=truth)
    assert not np.allclose(rgba[1, 1, :3], rgba[1, 2, :3])  # inside and outside differ in colour
    assert np.all(rgba[2, :, :3] == 0.0)  # the true boundary drawn black
    with pytest.raises(ValueError, match="unknown layer"):
        viz.layer_rgba(image, "heat", distances)
