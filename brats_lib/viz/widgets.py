"""The slice browser widget and the PNG slices it shows.

:class:`SliceBrowser` is an ipywidgets browser. Its slice slider is linked to stacks of pre-rendered PNG slices
in the browser itself (``jslink``), so it keeps working in a static HTML page where no Python kernel runs; the
other controls re-render the stacks through Python callbacks. With ``static=True`` (a notebook executed for
the book) those controls are replaced by a panel saying that the page is a static view.

With predictions, each shown model gets a panel beside the ground truth, drawn as one layer: the predicted
labels, the error map of a region (TP / FP / FN in :data:`~brats_lib.labels.ERROR_COLORS`) or the predicted
region's boundary coloured by its signed distance to the true boundary (purple inside the truth, orange
outside; the true boundary in black); the case's scores are shown beside the images.
"""

from __future__ import annotations

import html
import io as _io
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..io import MODALITIES, Case, LoadedCase, load_case
from ..labels import ERROR_COLORS, LABEL_COLORS, LABEL_DESCRIPTIONS, LABEL_NAMES, REGION_ORDER, REGIONS
from .slices import (MODALITY_NAMES, _axis, _modality_channel, display_slice, informative_slices,
                     intensity_window, largest_label_slice, normalize, overlay_rgba, slice_spacing, take_slice)

#: Layers of a model panel.
LAYERS: tuple[str, ...] = ("prediction", "error map", "boundary distance")
#: Colour range (± mm) of the boundary-distance layer.
BOUNDARY_LIMIT_MM = 5.0
_NO_MODEL = "—"


def _png(rgba: np.ndarray, pixel_mm, scale: float = 1.0) -> bytes:
    """PNG bytes of an (H, W, 3|4) float image in [0, 1] drawn at its physical aspect (``scale`` px per mm)."""
    from PIL import Image

    rgb = (np.clip(rgba[..., :3], 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    pil = Image.fromarray(rgb, mode="RGB")
    row_mm, col_mm = pixel_mm
    size = (max(1, round(rgb.shape[1] * col_mm * scale)), max(1, round(rgb.shape[0] * row_mm * scale)))
    if size != pil.size:
        pil = pil.resize(size, Image.Resampling.NEAREST)
    buffer = _io.BytesIO()
    pil.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def render_slice_png(loaded: LoadedCase, plane: str, index: int, modality: str = "t2f", alpha: float = 0.4,
                     window: tuple[float, float] | None = None, scale: float = 1.0) -> bytes:
    """PNG bytes of one overlay slice drawn at its physical aspect (``scale`` pixels per mm)."""
    image = loaded.image[_modality_channel(modality)]
    img2d = display_slice(image, plane, index)
    lab2d = display_slice(loaded.label, plane, index) if loaded.label is not None else None
    rgba = overlay_rgba(img2d, lab2d, alpha, window or intensity_window(image))
    return _png(rgba, slice_spacing(loaded.geometry.spacing, plane), scale)


def layer_rgba(image2d: np.ndarray, layer: str, layer2d: np.ndarray, alpha: float = 0.4,
               window: tuple[float, float] | None = None, truth2d: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 4) RGBA of one display slice with a model panel's ``layer`` (one of :data:`LAYERS`) blended in.

    Args:
        layer2d: the layer's slice: a label map (``prediction``), an error map with codes 1 TP / 2 FP / 3 FN
            (``error map``) or signed distances in mm, NaN off the boundary (``boundary distance``).
        truth2d: for ``boundary distance``, the true region's slice; its outline is drawn in black.
    """
    if layer == "prediction":
        return overlay_rgba(image2d, layer2d, alpha, window)
    if layer == "error map":
        from .analysis_plots import error_rgba

        return error_rgba(image2d, layer2d, alpha, window)
    if layer == "boundary distance":
        import matplotlib

        from .analysis_plots import SIGNED_CMAP

        grey = normalize(image2d, window)
        rgba = np.empty(grey.shape + (4,), np.float32)
        rgba[..., :3] = grey[..., None]
        rgba[..., 3] = 1.0
        if truth2d is not None and truth2d.any():
            from scipy import ndimage

            outline = truth2d & ~ndimage.binary_erosion(truth2d, border_value=0)
            rgba[outline, :3] = 0.0
        on = ~np.isnan(layer2d)
        if on.any():
            cmap = matplotlib.colormaps[SIGNED_CMAP]
            values = (np.clip(layer2d[on], -BOUNDARY_LIMIT_MM, BOUNDARY_LIMIT_MM) / BOUNDARY_LIMIT_MM + 1) / 2
            rgba[on, :3] = cmap(values)[:, :3]
        return rgba
    raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")


def _swatch(color, text: str) -> str:
    rgb = ",".join(str(int(round(c * 255))) for c in color)
    return (f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:12px;'
            f'height:12px;background:rgb({rgb});border:1px solid #333;vertical-align:middle"></span> '
            f"{html.escape(text)}</span>")


def _legend_html(layers: Iterable[str] = ()) -> str:
    """Legend of the label colours, and of the error-map or boundary-distance colours when shown."""
    items = "".join(_swatch(LABEL_COLORS[v], f"{LABEL_NAMES[v]}: {LABEL_DESCRIPTIONS[v]}") for v in LABEL_COLORS)
    layers = set(layers)
    if "error map" in layers:
        items += "<br>" + "".join(_swatch(ERROR_COLORS[k], text) for k, text in (
            ("TP", "TP: true positive"), ("FP", "FP: false positive"), ("FN", "FN: false negative (missed)")))
    if "boundary distance" in layers:
        import matplotlib

        from .analysis_plots import SIGNED_CMAP

        cmap = matplotlib.colormaps[SIGNED_CMAP]
        items += "<br>" + "".join(_swatch(cmap(v)[:3], text) for v, text in (
            (0.0, f"predicted boundary ≥ {BOUNDARY_LIMIT_MM:g} mm inside the truth (under-segmentation)"),
            (0.5, "on the true boundary (0 mm)"),
            (1.0, f"≥ {BOUNDARY_LIMIT_MM:g} mm outside the truth (over-segmentation)"))) + _swatch(
            (0.0, 0.0, 0.0), "true boundary")
    return f'<div class="brats-legend" style="font-size:12px">{items}</div>'


def _import_widgets():
    import ipywidgets as widgets

    return widgets


class SliceBrowser(_import_widgets().VBox):
    """Browse cases slice by slice: case, plane, slice, modality, label opacity and, with predictions, up to
    two models side by side with a layer each and the case's scores.

    The slice slider selects among ``n_slices`` pre-rendered PNG slices held in one ``widgets.Stack`` per panel;
    slider and stacks are linked in the browser (``jslink``), so sliding works with or without a kernel, e.g.
    in the static HTML book. Changing case, plane, modality, opacity, layer, region or models re-renders the
    stacks in Python (needs a running kernel); with ``static=True`` those controls are not shown and a panel
    says that the page is a static view of the initial settings. Loaded cases are cached (``cache_size``).

    Args:
        cases: dataset folder or sequence of :class:`~brats_lib.io.Case`.
        n_slices: slices pre-rendered per (case, plane), evenly spaced over the labelled region (or brain).
        case: initial case id (default: the first).
        plane, modality, alpha: initial plane, modality and label opacity.
        width: displayed width of each image panel in CSS pixels (default: 360 alone, 230 with models).
        predictions: ``{model: folder of <case-id>.nii.gz}``; each shown model gets a panel beside the ground
            truth (cases without a prediction show an empty panel with a note).
        models: the one or two models shown initially (default: the first two).
        layer: initial layer of the model panels (:data:`LAYERS`); region: the region of the error-map and
            boundary layers.
        scores: a tidy score table (``case``, ``region``, ``model`` and the ``score_columns``) shown beside the
            images for the current case and shown models.
        static: build for a page without a kernel (the book): kernel-only controls become a static panel.
    """

    def __init__(self, cases: str | os.PathLike | Iterable[Case], n_slices: int = 16, case: str | None = None,
                 plane: str = "axial", modality: str = "t2f", alpha: float = 0.4, width: int | None = None,
                 max_cases: int | None = None, cache_size: int = 2,
                 predictions: Mapping[str, str | os.PathLike] | None = None, models: Sequence[str] | None = None,
                 layer: str = "prediction", region: str = "WT", scores=None,
                 score_columns: Sequence[str] = ("LesionWise_Score_Dice", "LesionWise_Score_HD95"),
                 static: bool = False, names: Mapping[str, str] | None = None, **kwargs):
        widgets = _import_widgets()
        from ..eda import as_cases

        self._cases = {c.case_id: c for c in as_cases(cases, max_cases)}
        if not self._cases:
            raise ValueError("SliceBrowser needs at least one case")
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; expected one of {list(REGIONS)}")
        self.predictions = {m: Path(f) for m, f in (predictions or {}).items()}
        self.names = dict(names or {})
        self.scores = scores
        self.score_columns = tuple(score_columns)
        self.static = bool(static)
        self.n_slices = int(n_slices)
        self._cache: OrderedDict[str, LoadedCase] = OrderedDict()
        self._pred_cache: OrderedDict[tuple[str, str], np.ndarray | None] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        width = width if width is not None else (230 if self.predictions else 360)
        self._image_layout = widgets.Layout(width=f"{int(width)}px", height="auto", object_fit="contain")
        self.indices: list[int] = []

        self.case_dropdown = widgets.Dropdown(options=list(self._cases), value=case or next(iter(self._cases)),
                                              description="case")
        self.plane_buttons = widgets.ToggleButtons(options=list(("axial", "coronal", "sagittal")), value=plane,
                                                   tooltips=["[:, :, k]", "[:, j, :]", "[i, :, :]"],
                                                   style={"button_width": "88px"})
        self.modality_dropdown = widgets.Dropdown(
            options=[(f"{m} ({MODALITY_NAMES[m]})", m) for m in MODALITIES], value=modality,
            description="modality")
        self.opacity_slider = widgets.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05,
                                                  description="label opacity", readout_format=".2f",
                                                  continuous_update=False,
                                                  style={"description_width": "initial"})
        model_options = [(self.names.get(m, m), m) for m in self.predictions] + [(_NO_MODEL, _NO_MODEL)]
        shown = list(models) if models is not None else list(self.predictions)[:2]
        unknown = [m for m in shown if m not in self.predictions]
        if unknown or len(shown) > 2:
            raise ValueError(f"models {shown}: at most two of the predictions {list(self.predictions)}")
        shown += [_NO_MODEL] * (2 - len(shown))
        self.model_dropdowns = [widgets.Dropdown(options=model_options, value=shown[i],
                                                 description=("left model", "right model")[i],
                                                 style={"description_width": "initial"}) for i in range(2)]
        self.layer_dropdown = widgets.Dropdown(options=list(LAYERS), value=layer, description="layer")
        self.region_dropdown = widgets.Dropdown(options=list(REGION_ORDER), value=region, description="region")
        self.slice_slider = widgets.SelectionSlider(options=[("0", 0)], description="slice",
                                                    continuous_update=True,
                                                    layout=widgets.Layout(width="420px"))
        self.stack = widgets.Stack(children=[], selected_index=None)  # the ground-truth panel
        self.model_stacks = [widgets.Stack(children=[], selected_index=None) for _ in range(2)]
        self.panel_titles = [widgets.HTML() for _ in range(3)]
        self.status = widgets.HTML()
        self.legend = widgets.HTML()
        self.scores_html = widgets.HTML()
        self.static_panel = widgets.HTML()
        self._link = widgets.jslink((self.slice_slider, "index"), (self.stack, "selected_index"))
        # a model stack is linked only while it holds slices: in the browser, setting the index of an empty
        # stack throws inside the slider's change event, and the links after it (the ground truth's) never run
        self._model_links: list = [None, None]
        self._busy = False
        self._panels = [widgets.VBox([self.panel_titles[0], self.stack])] + [
            widgets.VBox([self.panel_titles[i + 1], s]) for i, s in enumerate(self.model_stacks)]
        self.images = widgets.HBox(self._panels)
        self._render_all()
        controls = [self.case_dropdown, self.plane_buttons, self.modality_dropdown, self.opacity_slider,
                    self.layer_dropdown, self.region_dropdown, *self.model_dropdowns]
        for control in controls:
            control.observe(self._on_change, names="value")
        if self.static:
            rows = [self.static_panel, self.slice_slider]
        else:
            rows = [widgets.HBox([self.case_dropdown, self.modality_dropdown]),
                    widgets.HBox([widgets.Label("plane", layout=widgets.Layout(width="90px")), self.plane_buttons])]
            if self.predictions:
                rows.append(widgets.HBox([self.layer_dropdown, self.region_dropdown]))
                rows.append(widgets.HBox(self.model_dropdowns))
            rows += [self.slice_slider, self.opacity_slider]
        body = widgets.HBox([self.images, self.scores_html]) if self.predictions else self.images
        super().__init__(
            children=[*rows, body, self.legend, self.status],
            layout=widgets.Layout(border="1px solid #ddd", padding="6px"),
            **kwargs,
        )
        self.add_class("brats-slice-browser")
        if self.static:
            self.add_class("brats-static-view")

    # -- data
    def load(self, case_id: str) -> LoadedCase:
        """The loaded case ``case_id`` (cached)."""
        if case_id in self._cache:
            self._cache.move_to_end(case_id)
            return self._cache[case_id]
        loaded = load_case(self._cases[case_id])
        self._cache[case_id] = loaded
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return loaded

    def prediction(self, model: str, case_id: str) -> np.ndarray | None:
        """The prediction of ``model`` for ``case_id`` (uint8, on the case's grid; cached), ``None`` if there is
        no ``<case-id>.nii.gz`` in the model's folder.

        Raises:
            BratsInputError: an unreadable file, unknown labels or a grid other than the case's (named).
        """
        key = (model, case_id)
        if key in self._pred_cache:
            return self._pred_cache[key]
        from ..analysis.pairs import check_same_grid, read_label_map

        folder = self.predictions[model]
        path = next((folder / f"{case_id}{s}" for s in (".nii.gz", ".nii") if (folder / f"{case_id}{s}").is_file()),
                    None)
        label = None
        if path is not None:
            loaded = self.load(case_id)
            label, affine = read_label_map(path)
            check_same_grid(path, label.shape, affine, self._cases[case_id].seg_path or "the case's image",
                            loaded.geometry.shape, loaded.geometry.affine)
        self._pred_cache[key] = label
        while len(self._pred_cache) > 2 * self._cache_size:
            self._pred_cache.popitem(last=False)
        return label

    def slice_2d(self, plane: str | None = None, index: int | None = None, modality: str | None = None,
                 case_id: str | None = None) -> np.ndarray:
        """The raw (stored order, :func:`take_slice`) 2D image slice the browser shows for these settings."""
        loaded = self.load(case_id or self.case_dropdown.value)
        channel = _modality_channel(modality or self.modality_dropdown.value)
        plane = plane or self.plane_buttons.value
        if index is None:
            index = self.current_index
        return take_slice(loaded.image[channel], plane, index)

    @property
    def current_index(self) -> int:
        """The slice index (in the volume) selected by the slider."""
        return int(self.slice_slider.value)

    @property
    def shown_models(self) -> list[str]:
        """The models with a panel, left to right."""
        return [d.value for d in self.model_dropdowns if d.value != _NO_MODEL] if self.predictions else []

    # -- rendering
    def _layer_volume(self, loaded: LoadedCase, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        layer, region = self.layer_dropdown.value, self.region_dropdown.value
        if layer == "prediction":
            return prediction, None
        from ..analysis.boundaries import signed_boundary_map
        from ..analysis.errors import error_map

        gt = loaded.label if loaded.label is not None else np.zeros_like(prediction)
        if layer == "error map":
            return error_map(prediction, gt, region), None
        labels = list(REGIONS[region])
        truth = np.isin(gt, labels)
        return signed_boundary_map(np.isin(prediction, labels), truth, loaded.geometry.spacing), truth

    def _render_stack(self, stack, pngs: list[bytes], reuse: bool) -> None:
        widgets = _import_widgets()
        if reuse and len(stack.children) == len(pngs):
            for img, png in zip(stack.children, pngs):
                img.value = png
        else:
            stack.children = [widgets.Image(value=png, format="png", layout=self._image_layout) for png in pngs]

    def _render_all(self, keep_index: bool = False) -> None:
        loaded = self.load(self.case_dropdown.value)
        plane, modality = self.plane_buttons.value, self.modality_dropdown.value
        alpha = self.opacity_slider.value
        image = loaded.image[_modality_channel(modality)]
        indices = informative_slices(loaded.label, plane, self.n_slices, loaded.image)
        window = intensity_window(image)
        pixel_mm = slice_spacing(loaded.geometry.spacing, plane)
        reuse = indices == self.indices
        previous = self.current_index if keep_index and self.indices else None
        self._render_stack(self.stack, [render_slice_png(loaded, plane, i, modality, alpha, window)
                                        for i in indices], reuse)
        self.panel_titles[0].value = '<b style="font-size:12px">ground truth</b>'
        shown = self.shown_models
        layer, region = self.layer_dropdown.value, self.region_dropdown.value
        for slot, stack in enumerate(self.model_stacks):
            model = shown[slot] if slot < len(shown) else None
            self._panels[slot + 1].layout.display = None if model else "none"
            if model is None:
                stack.selected_index = None  # before the children go: an index past them breaks the view
                stack.children = []
                continue
            prediction = self.prediction(model, loaded.case.case_id)
            label = self.names.get(model, model)
            if prediction is None:
                blank = np.zeros_like(loaded.label if loaded.label is not None else image, dtype=np.uint8)
                volume, truth, note = blank, None, " (no prediction for this case)"
                draw_layer = "prediction"
            else:
                (volume, truth), note, draw_layer = self._layer_volume(loaded, prediction), "", layer
            pngs = []
            for i in indices:
                img2d = display_slice(image, plane, i)
                rgba = layer_rgba(img2d, draw_layer, display_slice(volume, plane, i), alpha, window,
                                  display_slice(truth, plane, i) if truth is not None else None)
                pngs.append(_png(rgba, pixel_mm))
            self._render_stack(stack, pngs, reuse)
            what = layer if layer == "prediction" else f"{layer} ({region})"
            self.panel_titles[slot + 1].value = (f'<b style="font-size:12px">{html.escape(label)}</b>'
                                                 f'<span style="font-size:12px"> · {what}{note}</span>')
        if not reuse:
            self.indices = indices
            self.slice_slider.options = [(str(i), i) for i in indices]
        if previous is not None and previous in indices:
            start = indices.index(previous)
        else:
            best = largest_label_slice(loaded.label, plane)
            start = (int(np.argmin([abs(i - best) for i in indices])) if best is not None
                     else len(indices) // 2)
        self.slice_slider.index = start
        for stack in (self.stack, *self.model_stacks):
            if stack.children:
                stack.selected_index = start
        self._link_model_stacks()
        self.legend.value = _legend_html([layer] if shown else [])
        self.scores_html.value = self._scores_html(loaded.case.case_id, shown)
        row_mm, col_mm = pixel_mm
        kernel = ("static view: only the slice slider works here" if self.static else
                  "case, plane, modality, opacity, layer and models need a running kernel")
        self.status.value = (
            f'<span style="font-size:12px;color:#555">{loaded.case.case_id} · {plane} · '
            f"{MODALITY_NAMES[modality]} · {len(indices)} of {image.shape[_axis(plane)]} slices "
            f"({indices[0]}–{indices[-1]}) · pixel {col_mm:.2f} × {row_mm:.2f} mm · {kernel}</span>")
        models_text = ", ".join(self.names.get(m, m) for m in shown) or "none"
        self.static_panel.value = (
            '<div class="brats-static-panel" style="font-size:12px;border:1px dashed #888;padding:4px 8px;'
            'background:#f6f6f6"><b>Static view</b> (no live kernel in this page): case '
            f"{html.escape(loaded.case.case_id)}, {plane} plane, {html.escape(MODALITY_NAMES[modality])}, label "
            f"opacity {alpha:.2f}"
            + (f", models {html.escape(models_text)}, layer {layer} ({region})" if self.predictions else "")
            + ". The slice slider works here; to change case, plane, modality, opacity, layer or models, open the "
              "notebook in JupyterLab and run it.</div>")

    def _link_model_stacks(self) -> None:
        """Link the slider to the model stacks that hold slices, unlink the empty ones."""
        widgets = _import_widgets()
        for slot, stack in enumerate(self.model_stacks):
            link = self._model_links[slot]
            if stack.children and link is None:
                self._model_links[slot] = widgets.jslink((self.slice_slider, "index"), (stack, "selected_index"))
            elif not stack.children and link is not None:
                link.unlink()
                link.close()
                self._model_links[slot] = None

    def _scores_html(self, case_id: str, models: Sequence[str]) -> str:
        if self.scores is None or not models:
            return ""
        table = self.scores[self.scores["case"] == case_id]
        columns = [c for c in self.score_columns if c in table]
        if table.empty or not columns:
            return f'<div style="font-size:12px;padding:4px">no scores for {html.escape(case_id)}</div>'
        short = {"LesionWise_Score_Dice": "Dice", "LesionWise_Score_HD95": "HD95 (mm)"}
        head = "".join(f"<th>{html.escape(self.names.get(m, m))}<br>{short.get(c, c)}</th>"
                       for m in models for c in columns)
        rows = []
        for region in REGION_ORDER:
            cells = []
            for model in models:
                part = table[(table["region"] == region) & ((table["model"] == model) if "model" in table else True)]
                for c in columns:
                    value = float(part[c].iloc[0]) if len(part) else float("nan")
                    cells.append(f"<td>{'—' if not np.isfinite(value) else f'{value:.3g}'}</td>")
            rows.append(f"<tr><th>{region}</th>{''.join(cells)}</tr>")
        return ('<div class="brats-scores" style="font-size:11px;padding:4px"><b>lesion-wise scores of this case'
                f'</b><table style="border-collapse:collapse"><tr><th>region</th>{head}</tr>{"".join(rows)}'
                "</table></div>")

    def _on_change(self, change) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            keep = change["owner"] not in (self.case_dropdown, self.plane_buttons)
            self._render_all(keep_index=keep)
        finally:
            self._busy = False


__all__ = ["LAYERS", "SliceBrowser", "layer_rgba", "render_slice_png"]
