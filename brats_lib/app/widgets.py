"""The app page: upload (or a demo case) → run choice → progress → slices, 3D view, volumes, scores, downloads;
and an augmentation tab. Built from ipywidgets, so it runs in JupyterLab and, served by Voilà, as a web page
(one kernel per browser tab).

Stable CSS classes for tests and styling: ``brats-upload`` (the file upload), ``brats-run`` (start),
``brats-cancel``, ``brats-progress`` (the bar), ``brats-error`` (messages about the input), ``brats-warning``,
``brats-volumes`` (holds the volumes ``<table>``), ``brats-scores``, ``brats-download`` (holds the links),
``brats-results``, ``brats-run-info``, ``brats-demo-case``, ``brats-modality-choice``.

Segmentation starts as soon as an upload is accepted (or a demo case is chosen); ``Segment`` re-runs it with
the current run, device and TTA choice. It runs in a worker thread (:class:`.job.SegmentationJob`), so the
page (cancel included) stays responsive.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import threading
import time
from pathlib import Path
from typing import Sequence

import ipywidgets as widgets
import torch

from ..io import BratsInputError, Case, LoadedCase, discover_cases, load_case
from ..labels import LABEL_COLORS, LABEL_NAMES
from ..paths import resolve_path
from . import preview as _preview
from .job import SegmentationJob, SegmentationResult
from .results import (download_link_html, label_nifti_bytes, lesion_scores, region_volumes, scores_html,
                      volumes_csv, volumes_html)
from .runs import describe_run, find_runs
from .upload import DEFAULT_MAX_UPLOAD_BYTES, TAGS, ModalityChoiceNeeded, UploadedFile, Workspace, stage_upload

log = logging.getLogger(__name__)

_PREFERRED_RUNS = ("unet3d", "resunet3d", "fcnn")


def _box(children, css: str | None = None, **layout) -> widgets.VBox:
    box = widgets.VBox(children, layout=widgets.Layout(**layout))
    if css:
        box.add_class(css)
    return box


def _message(kind: str, text: str) -> str:
    colours = {"error": ("#8a1c1c", "#fdecea"), "warning": ("#6b4e00", "#fff4d6"), "info": ("#1b4d6b", "#e8f3fa")}
    fg, bg = colours[kind]
    return (f'<div class="brats-{kind}-text" style="color:{fg};background:{bg};padding:6px 10px;'
            f'border-radius:4px;margin:4px 0">{html.escape(text)}</div>')


def _is_synthetic_dataset(folder: Path) -> bool:
    import json

    try:
        manifest = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        return manifest.get("generator") == "brats_lib.synthetic"
    except (OSError, ValueError, AttributeError):
        return False


class SegmentApp(widgets.VBox):
    """Upload four MRI volumes (or a zip, or pick a demo case), segment them with a trained run, inspect and
    download the result.

    Args:
        runs_root: folder searched for run directories (``config.json`` + checkpoint); relative paths are
            taken from the project root.
        demo_data_dir: dataset offered as demo cases (may be missing).
        max_upload_mb: limit on an upload's total size and on a zip's unpacked size (MB, 10⁶ bytes).
        device: initial device (``auto``: CUDA when present).
        tta: initial mirroring-TTA setting (off: 8× faster).
        workspace_parent: where the private temporary folder goes (default: the system's).
    """

    def __init__(self, runs_root: str | Path = "runs/demo", demo_data_dir: str | Path | None = "data/synthetic",
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_BYTES / 1e6, device: str = "auto", tta: bool = False,
                 workspace_parent: str | Path | None = None, **kwargs):
        self.runs_root = resolve_path(runs_root)
        self.max_bytes = int(max_upload_mb * 1e6)
        self.workspace = Workspace(workspace_parent)
        self._lock = threading.Lock()
        self._job: SegmentationJob | None = None
        self._ensembles: dict = {}
        self._pending_files: list[UploadedFile] | None = None
        self.case: Case | None = None
        self.case_is_synthetic = False
        self.result: SegmentationResult | None = None
        self._last_progress = (None, -1.0)
        self._preview_cache: tuple | None = None
        self._uploads = 0

        # --- input
        accept = ".nii,.nii.gz,.gz,.zip"
        self.upload = widgets.FileUpload(accept=accept, multiple=True, description="Upload scans",
                                         button_style="primary", layout=widgets.Layout(width="180px"))
        self.upload.add_class("brats-upload")
        self.upload.observe(self._on_upload, names="value")
        self.demo_dir = resolve_path(demo_data_dir) if demo_data_dir else None
        self._demo_cases = self._find_demo_cases()
        self.demo_dropdown = widgets.Dropdown(options=[c.case_id for c in self._demo_cases] or ["(none)"],
                                              description="demo case", disabled=not self._demo_cases)
        self.demo_button = widgets.Button(description="Segment demo case", disabled=not self._demo_cases)
        self.demo_button.add_class("brats-demo-case")
        self.demo_button.on_click(self._on_demo)
        self.choice_box = _box([], "brats-modality-choice")
        self.choice_box.layout.display = "none"

        # --- run
        runs = find_runs(self.runs_root)
        self.run_infos = {}
        for r in runs:
            try:
                info = describe_run(r, self.runs_root)
                self.run_infos[info.name] = info
            except (OSError, ValueError) as exc:  # unreadable config: list it as unusable
                log.warning("skipping run %s: %s", r, exc)
        names = list(self.run_infos)
        default = next((n for p in _PREFERRED_RUNS for n in names if Path(n).name == p), names[:1])
        default = [default] if isinstance(default, str) else default
        self.run_select = widgets.SelectMultiple(options=names, value=tuple(default), description="run(s)",
                                                 rows=min(max(len(names), 2), 6),
                                                 layout=widgets.Layout(width="420px"))
        self.run_select.observe(lambda _: self._show_run_info(), names="value")
        devices = ["cpu"] + ([f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available()
                             else [])
        initial = ("cuda:0" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.device_dropdown = widgets.Dropdown(options=devices, value=initial if initial in devices else "cpu",
                                                description="device")
        self.tta_checkbox = widgets.Checkbox(value=bool(tta), description="mirroring TTA (8 passes, slower)",
                                             indent=False)
        self.run_button = widgets.Button(description="Segment", button_style="success", icon="play",
                                         disabled=True, tooltip="segment the current case with the chosen run(s)")
        self.run_button.add_class("brats-run")
        self.run_button.on_click(lambda _: self.start())
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("brats-cancel")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="",
                                              layout=widgets.Layout(width="420px"))
        self.progress.add_class("brats-progress")
        self.stage_label = widgets.HTML()
        self.stage_label.add_class("brats-stage")
        self.run_info = widgets.HTML()
        self.run_info.add_class("brats-run-info")

        # --- messages and results
        self.error = widgets.HTML()
        self.error.add_class("brats-error")
        self.warning = widgets.HTML()
        self.warning.add_class("brats-warning")
        self.upload_status = widgets.HTML()
        self.upload_status.add_class("brats-upload-status")
        self.case_info = widgets.HTML()
        self.case_info.add_class("brats-case-info")
        self.volumes = widgets.HTML()
        self.volumes.add_class("brats-volumes")
        self.scores = widgets.HTML()
        self.scores.add_class("brats-scores")
        self.downloads = widgets.HTML()
        self.downloads.add_class("brats-download")
        self.views = widgets.Tab(children=[])
        self.views.observe(self._on_view_tab, names="selected_index")
        self.results = _box([], "brats-results")

        limit = f"{self.max_bytes / 1e6:.0f} MB"
        help_text = widgets.HTML(
            "<b>Input:</b> four NIfTI volumes named like <code>…-t1n/-t1c/-t2w/-t2f.nii.gz</code> (BraTS 2024) or "
            "<code>…_t1/_t1ce/_t2/_flair.nii.gz</code> (2018–2021), or any names (you then choose each file's "
            "modality), plus an optional ground truth <code>…-seg</code>/<code>…_seg</code>; or one zip of a case "
            f"folder; at most {limit} in all. Files stay in a private temporary folder of this page's session and "
            "are deleted when it ends.")
        segment_tab = _box([
            help_text,
            widgets.HBox([self.upload, widgets.HTML("&nbsp;or&nbsp;"), self.demo_dropdown, self.demo_button]),
            self.upload_status,
            self.choice_box,
            widgets.HBox([self.run_select, _box([self.device_dropdown, self.tta_checkbox])]),
            self.run_info,
            widgets.HBox([self.run_button, self.cancel_button, self.progress, self.stage_label]),
            self.error,
            self.warning,
            self.case_info,
            self.results,
        ])

        # --- augmentation tab
        self.aug_sliders = {
            "rotation": widgets.FloatSlider(value=0, min=-30, max=30, step=1, description="rotation z (°)"),
            "zoom": widgets.FloatSlider(value=1.0, min=0.7, max=1.4, step=0.05, description="zoom"),
            "elastic": widgets.FloatSlider(value=0, min=0, max=12, step=0.5, description="elastic (vox)"),
            "noise": widgets.FloatSlider(value=0, min=0, max=0.5, step=0.02, description="noise σ"),
            "blur": widgets.FloatSlider(value=0, min=0, max=2, step=0.1, description="blur σ (vox)"),
            "brightness": widgets.FloatSlider(value=1, min=0.7, max=1.3, step=0.05, description="brightness ×"),
            "contrast": widgets.FloatSlider(value=1, min=0.7, max=1.3, step=0.05, description="contrast ×"),
            "low_resolution": widgets.FloatSlider(value=1, min=0.5, max=1, step=0.05, description="resolution kept"),
            "gamma": widgets.FloatSlider(value=1, min=0.7, max=1.5, step=0.05, description="gamma γ"),
            "flip_x": widgets.Checkbox(value=False, description="flip x", indent=False),
            "flip_y": widgets.Checkbox(value=False, description="flip y", indent=False),
            "flip_z": widgets.Checkbox(value=False, description="flip z", indent=False),
        }
        for w in self.aug_sliders.values():
            w.style = {"description_width": "110px"}
            if isinstance(w, widgets.FloatSlider):
                w.continuous_update = False
            w.observe(lambda _: self._render_preview(), names="value")
        self.aug_reset = widgets.Button(description="Reset")
        self.aug_reset.on_click(lambda _: self._reset_preview())
        self.aug_image = widgets.Image(format="png", layout=widgets.Layout(width="520px"))
        self.aug_status = widgets.HTML("Upload a case (or pick a demo case) to preview the augmentations on it.")
        self.aug_status.add_class("brats-aug-status")
        sliders = list(self.aug_sliders.values())
        aug_tab = _box([
            widgets.HTML("The training pipeline's transforms (<code>brats_lib.augment</code>) with parameters set "
                         "by hand, on a window of at most 96³ voxels around the tumour. Rows: T1c and T2-FLAIR; "
                         "left the preprocessed case, right the augmented one; labels in the house colours."),
            widgets.HBox([_box(sliders[:5]), _box(sliders[5:9]), _box(sliders[9:] + [self.aug_reset])]),
            self.aug_status, self.aug_image, widgets.HTML(_legend_html()),
        ], "brats-augmentation")

        self.tabs = widgets.Tab(children=[segment_tab, aug_tab])
        self.tabs.set_title(0, "Segment")
        self.tabs.set_title(1, "Augmentation")
        self.tabs.observe(lambda ch: self._render_preview() if ch["new"] == 1 else None, names="selected_index")
        title = widgets.HTML("<h2 style='margin:4px 0'>BraTS Lab · segment your own scans</h2>")
        super().__init__(children=[title, self.tabs], **kwargs)
        self.add_class("brats-app")
        self._show_run_info()
        if not self.run_infos:
            self._set_error(f"no trained runs under {self.runs_root} (train them with `make demo`, or pass "
                            f"runs_root)")

    # ------------------------------------------------------------------------------------------ helpers
    def _find_demo_cases(self) -> list[Case]:
        if self.demo_dir is None or not self.demo_dir.is_dir():
            return []
        try:
            return discover_cases(self.demo_dir)
        except BratsInputError:
            return []

    def _set_error(self, text: str | None) -> None:
        self.error.value = _message("error", text) if text else ""

    def _selected_runs(self) -> list:
        return [self.run_infos[n] for n in self.run_select.value]

    def _show_run_info(self) -> None:
        infos = self._selected_runs()
        if not infos:
            self.run_info.value = _message("info", "choose one run (or several: an ensemble)")
            return
        lines = "".join(f"<li>{html.escape(i.summary())}</li>" for i in infos)
        kind = "an ensemble of " + str(len(infos)) + " runs" if len(infos) > 1 else "run"
        self.run_info.value = (f'<div style="font-size:12px">The chosen {kind}:<ul style="margin:2px 0">{lines}</ul>'
                               "</div>")
        self._update_warning()

    def _update_warning(self) -> None:
        infos = self._selected_runs()
        if self.case is None or not infos:
            self.warning.value = ""
            return
        synthetic_runs = [i.name for i in infos if i.synthetic]
        if synthetic_runs and not self.case_is_synthetic:
            self.warning.value = _message(
                "warning", f"Demo model: {', '.join(synthetic_runs)} was trained on synthetic data only and is "
                           "applied here to a scan that is not from the synthetic set. Its output is a "
                           "demonstration, not a clinical segmentation.")
        else:
            self.warning.value = ""

    def _internal_error(self, exc: BaseException) -> str:
        log.error("internal error", exc_info=exc)
        return (f"internal error (a bug in BraTS Lab, not a problem with your files): {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------------------------------- input
    def _on_upload(self, change) -> None:
        value = change["new"]
        if not value:
            return
        files = UploadedFile.from_widget(value)
        self.upload.value = ()  # free the bytes held by the widget; the same files can be chosen again
        self.accept_files(files)

    def accept_files(self, files: Sequence[UploadedFile], choices: dict | None = None) -> bool:
        """Stage an upload and start segmenting it; a bad upload is reported in the page. True if accepted."""
        self.cancel()
        self._set_error(None)
        self.choice_box.layout.display = "none"
        self._clear_results()
        self._uploads += 1
        names = ", ".join(f.name for f in files)
        self._upload_state("checking", names)
        try:
            folder = self.workspace.new_folder("upload")
            case = stage_upload(files, folder, self.max_bytes, choices)
            loaded = load_case(case)  # every check of brats_lib.io, before anything runs
        except ModalityChoiceNeeded as need:
            self._pending_files = list(files)
            self._ask_modalities(need)
            self._upload_state("choose the modalities", names)
            return False
        except BratsInputError as exc:
            self._reject(self.workspace.relative(str(exc)))
            self._upload_state("rejected", names)
            return False
        except Exception as exc:  # noqa: BLE001 - shown as an internal error, the page stays usable
            self._reject(self._internal_error(exc))
            self._upload_state("rejected", names)
            return False
        self._pending_files = None
        self._set_case(case, loaded, synthetic=False, source="upload")
        self._upload_state("accepted", names)
        self.start()
        return True

    def _upload_state(self, state: str, names: str) -> None:
        """``upload N: state (files)``, N counting the uploads of this page (tests wait on it)."""
        self.upload_status.value = (f'<span style="font-size:12px;color:#555" data-upload="{self._uploads}">'
                                    f"upload {self._uploads}: {html.escape(state)} ({html.escape(names)})</span>")

    def _reject(self, text: str) -> None:
        self.case = None
        self.run_button.disabled = True
        self._set_error(text)
        self._update_warning()

    def _ask_modalities(self, need: ModalityChoiceNeeded) -> None:
        options = [("choose…", "")] + [(t if t != "seg" else "seg (ground truth)", t) for t in TAGS]
        self._choice_dropdowns = {}
        rows = []
        for name in need.names:
            dd = widgets.Dropdown(options=options, value=need.guesses.get(name, ""), description=name,
                                  style={"description_width": "260px"}, layout=widgets.Layout(width="460px"))
            self._choice_dropdowns[name] = dd
            rows.append(dd)
        ok = widgets.Button(description="Use these modalities", button_style="primary")
        ok.on_click(lambda _: self._apply_choices())
        self.choice_box.children = [widgets.HTML(_message("info", str(need)))] + rows + [ok]
        self.choice_box.layout.display = "flex"

    def _apply_choices(self) -> None:
        if not self._pending_files:
            return
        choices = {name: dd.value for name, dd in self._choice_dropdowns.items()}
        files = self._pending_files
        if not self.accept_files(files, choices):
            self._pending_files = files

    def _on_demo(self, _=None) -> None:
        self.cancel()
        self._set_error(None)
        self._clear_results()
        case = next((c for c in self._demo_cases if c.case_id == self.demo_dropdown.value), None)
        if case is None:
            return
        try:
            loaded = load_case(case)
        except BratsInputError as exc:
            self._reject(str(exc))
            return
        self._set_case(case, loaded, synthetic=_is_synthetic_dataset(self.demo_dir), source="demo")
        self.start()

    def _set_case(self, case: Case, loaded: LoadedCase, synthetic: bool, source: str) -> None:
        self.case, self.loaded, self.case_is_synthetic = case, loaded, synthetic
        self._preview_cache = None
        g = loaded.geometry
        gt = "with a ground truth" if loaded.label is not None else "no ground truth"
        origin = "a synthetic demo case" if synthetic else ("a demo case" if source == "demo" else "uploaded")
        self.case_info.value = (
            f'<div style="font-size:12px"><b>{html.escape(case.case_id)}</b> ({origin}, {gt}): '
            f"{'×'.join(map(str, g.shape))} voxels of {' × '.join(f'{s:.2f}' for s in g.spacing)} mm, "
            f"{g.orientation}</div>")
        self.run_button.disabled = False
        self._update_warning()
        if self.tabs.selected_index == 1:
            self._render_preview()

    # --------------------------------------------------------------------------------------------- run
    def _ensemble(self, runs: list[str], device: str):
        from ..inference import load_ensemble

        key = (tuple(runs), device)
        if key not in self._ensembles:
            self._ensembles.clear()
            self._ensembles[key] = load_ensemble(runs, device=device)
        return self._ensembles[key]

    def start(self) -> SegmentationJob | None:
        """Segment the current case with the chosen run(s); returns the running job."""
        if self.case is None:
            return None
        infos = self._selected_runs()
        if not infos:
            self._set_error("choose a run first")
            return None
        self.cancel()
        self._clear_results()
        self._set_error(None)
        device = self.device_dropdown.value
        try:
            ensemble = self._ensemble([str(i.path) for i in infos], device)
        except (FileNotFoundError, ValueError) as exc:
            self._set_error(f"cannot use the chosen run(s): {exc}")
            return None
        self.progress.value = 0.0
        self.progress.bar_style = "info"
        self.stage_label.value = "starting…"
        self.run_button.disabled = True
        self.cancel_button.disabled = False
        self._t0 = time.perf_counter()
        job = SegmentationJob(self.loaded, ensemble, device, self.tta_checkbox.value,
                              on_progress=self._on_progress, on_done=self._on_done,
                              on_cancel=self._on_cancelled, on_error=self._on_failed)
        with self._lock:
            self._job = job
        return job.start()

    def cancel(self) -> None:
        """Stop the running segmentation (at its next network pass) and wait for it."""
        with self._lock:
            job = self._job
        if job is not None and job.running:
            job.cancel()
            job.join(timeout=120)

    def _on_progress(self, stage: str, fraction: float) -> None:
        last_stage, last = self._last_progress
        if stage == last_stage and fraction - last < 0.01 and fraction < 1.0:
            return  # at most ~100 updates per run
        self._last_progress = (stage, fraction)
        self.progress.value = fraction
        self.stage_label.value = f"{html.escape(stage)} · {fraction:.0%}"

    def _finish_run(self) -> None:
        self.run_button.disabled = self.case is None
        self.cancel_button.disabled = True
        self._last_progress = (None, -1.0)

    def _on_cancelled(self) -> None:
        self.progress.bar_style = "warning"
        self.stage_label.value = "cancelled"
        self._finish_run()

    def _on_failed(self, exc: BaseException) -> None:
        self.progress.bar_style = "danger"
        self.stage_label.value = "failed"
        if isinstance(exc, BratsInputError):
            self._set_error(self.workspace.relative(str(exc)))
        else:
            self._set_error(self._internal_error(exc))
        self._finish_run()

    def _on_done(self, result: SegmentationResult) -> None:
        try:
            self.result = result
            self._show_result(result)
            self.progress.value = 1.0
            self.progress.bar_style = "success"
            self.stage_label.value = f"done in {time.perf_counter() - self._t0:.1f} s"
        except Exception as exc:  # noqa: BLE001
            self._on_failed(exc)
            return
        self._finish_run()

    # ------------------------------------------------------------------------------------------ results
    def _clear_results(self) -> None:
        self.result = None
        self.results.children = []
        self.volumes.value = self.scores.value = self.downloads.value = ""
        self._close_views()

    def _close_views(self) -> None:
        for child in self.views.children:
            child.close()
        self.views.children = []

    def _show_result(self, result: SegmentationResult) -> None:
        loaded, label, case_id = result.loaded, result.label, result.case_id
        spacing = loaded.geometry.spacing
        table = region_volumes(label, spacing)
        runs = ", ".join(Path(r).name for r in result.runs)
        self.volumes.value = volumes_html(table, caption=f"predicted volumes of {case_id}")
        folder = self.workspace.new_folder("result")
        nifti = label_nifti_bytes(label, loaded.geometry, folder)
        pred_path = folder / f"{case_id}.nii.gz"
        pred_path.write_bytes(nifti)
        self.downloads.value = (
            "<b>Download:</b> " + download_link_html(f"{case_id}.nii.gz", nifti, "application/gzip",
                                                     f"segmentation {case_id}.nii.gz")
            + download_link_html(f"{case_id}_volumes.csv", volumes_csv(table, case_id).encode(), "text/csv",
                                 "volumes (CSV)"))
        children = [widgets.HTML(f'<div style="font-size:12px">Segmented with {html.escape(runs)} on '
                                 f"{html.escape(result.device)}{' with TTA' if result.tta else ''}.</div>"),
                    widgets.HBox([self.volumes, self.scores]), self.downloads]
        if loaded.label is not None:
            scores = lesion_scores(label, loaded.label, spacing)
            self.scores.value = ("<div style='margin-left:24px'><b>Official BraTS 2024 lesion-wise scores</b> "
                                 "against the uploaded ground truth" + scores_html(scores) + "</div>")
        self._pred_path = pred_path
        self._close_views()
        self.views.children = [self._slice_view("prediction"), widgets.VBox()]
        self.views.set_title(0, "slices")
        self.views.set_title(1, "3D view")
        self.views.selected_index = 0
        children.append(self.views)
        self.results.children = children

    def _display_case(self, which: str) -> Case:
        case = self.case
        seg = self._pred_path
        if which == "prediction":  # our own file: 2024 labels, whatever the upload's layout
            return dataclasses.replace(case, seg_path=seg, layout="2024", extra_paths={}, label_values=None)
        return dataclasses.replace(case, extra_paths={})

    def _slice_view(self, which: str) -> widgets.Widget:
        from ..viz import SliceBrowser

        browser = SliceBrowser([self._display_case(which)], n_slices=16)
        if self.case.seg_path is None:
            return browser
        toggle = widgets.ToggleButtons(options=["prediction", "ground truth"], value=which,
                                       description="labels")

        def swap(change):
            self.views.children = [self._slice_view(change["new"])] + list(self.views.children[1:])
            self.views.selected_index = 0

        toggle.observe(swap, names="value")
        return widgets.VBox([toggle, browser])

    def _on_view_tab(self, change) -> None:
        if change["new"] != 1 or self.result is None or len(self.views.children) < 2:
            return
        holder = self.views.children[1]
        if holder.children:
            return
        try:
            holder.children = [self._niivue_view()]
        except Exception as exc:  # noqa: BLE001 - the 2D results stay usable
            holder.children = [widgets.HTML(_message("error", self._internal_error(exc)))]

    def _niivue_view(self) -> widgets.Widget:
        from ipyniivue import MultiplanarType, NiiVue, ShowRender, SliceType, Volume

        # three planes and the 3D rendering in a 2 × 2 grid (niivue's AUTO layout drops the rendering when the
        # panel is wide)
        nv = NiiVue(height=520, slice_type=SliceType.MULTIPLANAR, multiplanar_show_render=ShowRender.ALWAYS,
                    multiplanar_layout=MultiplanarType.GRID, back_color=(0.0, 0.0, 0.0, 1.0))
        lut = {"R": [0] + [round(LABEL_COLORS[v][0] * 255) for v in (1, 2, 3, 4)],
               "G": [0] + [round(LABEL_COLORS[v][1] * 255) for v in (1, 2, 3, 4)],
               "B": [0] + [round(LABEL_COLORS[v][2] * 255) for v in (1, 2, 3, 4)],
               "A": [0, 255, 255, 255, 255], "I": [0, 1, 2, 3, 4],
               "labels": [LABEL_NAMES[v] for v in range(5)]}
        modality = widgets.Dropdown(options=list(self.case.image_paths), value="t1c", description="image")
        opacity = widgets.FloatSlider(value=0.5, min=0, max=1, step=0.05, description="label opacity",
                                      style={"description_width": "initial"})

        def load(_=None):
            image = Volume(path=str(self.case.image_paths[modality.value]), colormap="gray")
            labels = Volume(path=str(self._pred_path), opacity=opacity.value)
            labels.set_colormap_label(lut)
            nv.load_volumes([image, labels])

        def set_opacity(change):
            if len(nv.volumes) > 1:
                nv.volumes[1].opacity = change["new"]

        load()
        modality.observe(load, names="value")
        opacity.observe(set_opacity, names="value")
        note = widgets.HTML("<span style='font-size:12px'>Three planes and a 3D rendering (drag to rotate); "
                            "the prediction overlaid on the chosen image.</span>")
        return widgets.VBox([widgets.HBox([modality, opacity]), nv, note, widgets.HTML(_legend_html())])

    # -------------------------------------------------------------------------------------- augmentation
    def _reset_preview(self) -> None:
        defaults = dataclasses.asdict(_preview.PreviewSettings())
        for name, w in self.aug_sliders.items():
            w.value = defaults[name]

    def _render_preview(self) -> None:
        if self.case is None or self.tabs.selected_index != 1:
            return
        try:
            if self._preview_cache is None or self._preview_cache[0] is not self.loaded:
                self.aug_status.value = "preparing the case…"
                label = self.result.label if self.result is not None and self.loaded.label is None else None
                self._preview_cache = (self.loaded, *_preview.preview_window(self.loaded, label))
            _, image, label = self._preview_cache
            settings = _preview.PreviewSettings(**{k: w.value for k, w in self.aug_sliders.items()})
            t0 = time.perf_counter()
            out_image, out_label = _preview.apply_settings(image, label, settings)
            self.aug_image.value = _preview.preview_png(image, label, out_image, out_label)
            self.aug_status.value = (f"{self.case.case_id}: window {'×'.join(map(str, image.shape[2:]))} voxels, "
                                     f"augmented in {time.perf_counter() - t0:.2f} s")
        except BratsInputError as exc:
            self.aug_status.value = _message("error", self.workspace.relative(str(exc)))
        except Exception as exc:  # noqa: BLE001
            self.aug_status.value = _message("error", self._internal_error(exc))

    # ------------------------------------------------------------------------------------------ closing
    def close(self) -> None:
        self.cancel()
        self.workspace.close()
        super().close()


def _legend_html() -> str:
    from ..labels import LABEL_DESCRIPTIONS, label_hex

    items = "".join(
        f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:12px;'
        f'height:12px;background:{label_hex(v)};border:1px solid #333;vertical-align:middle"></span> '
        f"{LABEL_NAMES[v]}: {LABEL_DESCRIPTIONS[v]}</span>" for v in (1, 2, 3, 4))
    return f'<div class="brats-legend" style="font-size:12px">{items}</div>'
