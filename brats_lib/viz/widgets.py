"""The slice browser widget and the PNG slices it shows.

:class:`SliceBrowser` is an ipywidgets browser. Its slice slider is linked to a stack of pre-rendered
PNG slices in the browser itself (``jslink``), so it keeps working in a static HTML page where no Python
kernel runs; the other controls re-render the stack through Python callbacks.
"""

from __future__ import annotations

import io as _io
import os
from collections import OrderedDict
from typing import Iterable

import numpy as np

from ..io import MODALITIES, Case, LoadedCase, load_case
from ..labels import LABEL_COLORS, LABEL_DESCRIPTIONS, LABEL_NAMES
from .slices import (MODALITY_NAMES, _axis, _modality_channel, display_slice, informative_slices,
                     intensity_window, largest_label_slice, overlay_rgba, slice_spacing, take_slice)

def render_slice_png(loaded: LoadedCase, plane: str, index: int, modality: str = "t2f", alpha: float = 0.4,
                     window: tuple[float, float] | None = None, scale: float = 1.0) -> bytes:
    """PNG bytes of one overlay slice drawn at its physical aspect (``scale`` pixels per mm)."""
    from PIL import Image

    image = loaded.image[_modality_channel(modality)]
    img2d = display_slice(image, plane, index)
    lab2d = display_slice(loaded.label, plane, index) if loaded.label is not None else None
    rgb = (overlay_rgba(img2d, lab2d, alpha, window or intensity_window(image))[..., :3] * 255 + 0.5)
    pil = Image.fromarray(rgb.astype(np.uint8), mode="RGB")
    row_mm, col_mm = slice_spacing(loaded.geometry.spacing, plane)
    size = (max(1, round(img2d.shape[1] * col_mm * scale)), max(1, round(img2d.shape[0] * row_mm * scale)))
    if size != pil.size:
        pil = pil.resize(size, Image.Resampling.NEAREST)
    buffer = _io.BytesIO()
    pil.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _legend_html() -> str:
    items = "".join(
        f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:12px;'
        f"height:12px;background:rgb({','.join(str(int(c * 255)) for c in LABEL_COLORS[v])});"
        f'border:1px solid #333;vertical-align:middle"></span> {LABEL_NAMES[v]}: {LABEL_DESCRIPTIONS[v]}</span>'
        for v in LABEL_COLORS
    )
    return f'<div class="brats-legend" style="font-size:12px">{items}</div>'


def _import_widgets():
    import ipywidgets as widgets

    return widgets


class SliceBrowser(_import_widgets().VBox):
    """Browse cases slice by slice: case, plane, slice, modality and label opacity.

    The slice slider selects among ``n_slices`` pre-rendered PNG slices held in a ``widgets.Stack``;
    slider and stack are linked in the browser (``jslink``), so sliding works with or without a kernel,
    e.g. in the static HTML book. Changing case, plane, modality or opacity re-renders the stack in Python
    (needs a running kernel). Loaded cases are cached (``cache_size`` most recent).

    Args:
        cases: dataset folder or sequence of :class:`~brats_lib.io.Case`.
        n_slices: slices pre-rendered per (case, plane), evenly spaced over the labelled region (or brain).
        case: initial case id (default: the first).
        plane, modality, alpha: initial plane, modality and label opacity.
        width: displayed image width in CSS pixels.
    """

    def __init__(self, cases: str | os.PathLike | Iterable[Case], n_slices: int = 16, case: str | None = None,
                 plane: str = "axial", modality: str = "t2f", alpha: float = 0.4, width: int = 360,
                 max_cases: int | None = None, cache_size: int = 2, **kwargs):
        widgets = _import_widgets()
        from ..eda import as_cases

        self._cases = {c.case_id: c for c in as_cases(cases, max_cases)}
        if not self._cases:
            raise ValueError("SliceBrowser needs at least one case")
        self.n_slices = int(n_slices)
        self._cache: OrderedDict[str, LoadedCase] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
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
        self.slice_slider = widgets.SelectionSlider(options=[("0", 0)], description="slice",
                                                    continuous_update=True,
                                                    layout=widgets.Layout(width="420px"))
        self.stack = widgets.Stack(children=[], selected_index=None)
        self.status = widgets.HTML()
        self._link = widgets.jslink((self.slice_slider, "index"), (self.stack, "selected_index"))
        self._busy = False
        self._render_all()
        for control in (self.case_dropdown, self.plane_buttons, self.modality_dropdown, self.opacity_slider):
            control.observe(self._on_change, names="value")
        super().__init__(
            children=[
                widgets.HBox([self.case_dropdown, self.modality_dropdown]),
                widgets.HBox([widgets.Label("plane", layout=widgets.Layout(width="90px")), self.plane_buttons]),
                self.slice_slider,
                self.opacity_slider,
                self.stack,
                widgets.HTML(_legend_html()),
                self.status,
            ],
            layout=widgets.Layout(border="1px solid #ddd", padding="6px"),
            **kwargs,
        )
        self.add_class("brats-slice-browser")

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

    # -- rendering
    def _render_all(self, keep_index: bool = False) -> None:
        widgets = _import_widgets()
        loaded = self.load(self.case_dropdown.value)
        plane, modality = self.plane_buttons.value, self.modality_dropdown.value
        image = loaded.image[_modality_channel(modality)]
        indices = informative_slices(loaded.label, plane, self.n_slices, loaded.image)
        window = intensity_window(image)
        pngs = [render_slice_png(loaded, plane, i, modality, self.opacity_slider.value, window) for i in indices]
        previous = self.current_index if keep_index and self.indices else None
        if indices == self.indices and len(self.stack.children) == len(pngs):
            for img, png in zip(self.stack.children, pngs):
                img.value = png
        else:
            self.stack.children = [widgets.Image(value=png, format="png", layout=self._image_layout)
                                   for png in pngs]
            self.indices = indices
            self.slice_slider.options = [(str(i), i) for i in indices]
        if previous is not None and previous in indices:
            start = indices.index(previous)
        else:
            best = largest_label_slice(loaded.label, plane)
            start = (int(np.argmin([abs(i - best) for i in indices])) if best is not None
                     else len(indices) // 2)
        self.slice_slider.index = start
        self.stack.selected_index = start
        row_mm, col_mm = slice_spacing(loaded.geometry.spacing, plane)
        self.status.value = (
            f'<span style="font-size:12px;color:#555">{loaded.case.case_id} · {plane} · '
            f"{MODALITY_NAMES[modality]} · {len(indices)} of {image.shape[_axis(plane)]} slices "
            f"({indices[0]}–{indices[-1]}) · pixel {col_mm:.2f} × {row_mm:.2f} mm · "
            f"case, plane, modality and opacity need a running kernel</span>")

    def _on_change(self, change) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            keep = change["owner"] in (self.modality_dropdown, self.opacity_slider)
            self._render_all(keep_index=keep)
        finally:
            self._busy = False


__all__ = ["SliceBrowser", "render_slice_png"]
