"""One segmentation, in stages with progress and cancel, runnable in a worker thread.

The prediction is :func:`brats_lib.inference.predict_case` with the defaults of ``brats predict`` (Gaussian
sliding window with overlap 0.5, the runs' ``postprocess.json``), so the app and the command line give the
same label map for the same case, run and TTA setting.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..inference import Ensemble, as_ensemble, predict_case
from ..io import Case, LoadedCase, load_case

#: Stage → (start, end) of its share of the progress bar.
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "load": (0.0, 0.08), "preprocess": (0.08, 0.15), "sliding window": (0.15, 0.95), "post-process": (0.95, 1.0),
    "done": (1.0, 1.0),
}

Progress = Callable[[str, float], None]


class Cancelled(Exception):
    """The user cancelled the segmentation."""


@dataclass
class SegmentationResult:
    """A finished segmentation.

    Attributes:
        loaded: the case's images (and ground truth, if given) on the input grid.
        label: (X, Y, Z) uint8 prediction on the input grid (2024 labels).
        runs: the run directories used.
        device: where the networks ran.
        tta: whether mirroring TTA was used.
        seconds: stage → wall seconds.
    """

    loaded: LoadedCase
    label: np.ndarray
    runs: list[str]
    device: str
    tta: bool
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def case_id(self) -> str:
        return self.loaded.case.case_id


def segment(case: Case | LoadedCase, source: Ensemble | str | Path | Sequence[str | Path], device: str = "cpu",
            tta: bool = False, progress: Progress | None = None, cancel: threading.Event | None = None
            ) -> SegmentationResult:
    """Load (if needed), preprocess, predict by sliding window, post-process.

    Args:
        case: a discovered case (loaded here, with :mod:`brats_lib.io`'s checks) or a loaded one.
        source: an :class:`~brats_lib.inference.Ensemble` or run director(y/ies).
        device: ``cpu``, ``cuda``…
        tta: mirroring TTA over the three axes (8 passes; ``brats predict``'s default, off here for speed).
        progress: ``progress(stage, overall fraction 0..1)``; stages ``load``, ``preprocess``,
            ``sliding window``, ``post-process``, ``done``.
        cancel: when set, the next progress point raises :class:`Cancelled`.
    Raises:
        Cancelled: ``cancel`` was set.
        BratsInputError: the case cannot be used (from :mod:`brats_lib.io` or preprocessing).
    """
    seconds: dict[str, float] = {}
    clock = {"stage": "load", "t": time.perf_counter()}

    def report(stage: str, fraction: float) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("segmentation cancelled")
        if stage != clock["stage"]:
            now = time.perf_counter()
            seconds[clock["stage"]] = seconds.get(clock["stage"], 0.0) + now - clock["t"]
            clock.update(stage=stage, t=now)
        if progress is not None:
            start, end = STAGE_SPANS.get(stage, (0.0, 1.0))
            progress(stage, start + (end - start) * float(fraction))

    report("load", 0.0)
    loaded = case if isinstance(case, LoadedCase) else load_case(case)
    ensemble = as_ensemble(source, device=device)
    label = predict_case(ensemble, loaded, device=device, tta=tta, progress=report)
    report("done", 1.0)
    runs = list(ensemble.sources) if isinstance(ensemble, Ensemble) else []
    return SegmentationResult(loaded, np.asarray(label, dtype=np.uint8), runs, str(device), bool(tta), seconds)


class SegmentationJob:
    """:func:`segment` in a daemon thread, so that the page stays responsive while the networks run.

    Callbacks run in the worker thread: ``on_progress(stage, fraction)``, then exactly one of
    ``on_done(result)``, ``on_cancel()`` or ``on_error(exception)``.
    """

    def __init__(self, case: Case | LoadedCase, source, device: str = "cpu", tta: bool = False,
                 on_progress: Progress | None = None, on_done: Callable[[SegmentationResult], None] | None = None,
                 on_cancel: Callable[[], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None):
        self._cancel = threading.Event()
        self._args = (case, source, device, tta)
        self._callbacks = (on_progress, on_done, on_cancel, on_error)
        self.result: SegmentationResult | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self._thread = threading.Thread(target=self._run, name="brats-segment", daemon=True)

    def _run(self) -> None:
        on_progress, on_done, on_cancel, on_error = self._callbacks
        case, source, device, tta = self._args
        try:
            self.result = segment(case, source, device, tta, on_progress, self._cancel)
        except Cancelled:
            self.cancelled = True
            if on_cancel:
                on_cancel()
            return
        except BaseException as exc:  # reported to the page; the thread must not die silently
            self.error = exc
            if on_error:
                on_error(exc)
            return
        if on_done:
            on_done(self.result)

    def start(self) -> "SegmentationJob":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
