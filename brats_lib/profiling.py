"""Where a training epoch's wall time goes: the accelerator busy, or the loop waiting for data.

:class:`EpochClock` splits the wall time of one epoch's training loop (from the loader's first ``next`` to
the last step's end) into

* **data wait**: host seconds spent waiting for the loader to hand over the next batch;
* **busy**: on CUDA, the seconds the GPU spends inside the steps, read from CUDA events recorded when a
  batch arrives and when its optimiser step has been queued (the span on the GPU's own timeline, so the
  GPU is counted busy while it still runs queued work during the host's data wait, and idle while it waits
  for the host); on the CPU, the host seconds of the steps.

``busy_share = busy / wall`` is in [0, 1]: 1 means the accelerator never waited. Throughput is samples per
wall second, and the achieved TFLOP/s counts the network's forward and backward FLOPs per sample
(:func:`train_step_flops`, counted by ``torch.utils.flop_counter``, 2 FLOPs per multiply–accumulate; the
loss, augmentation and optimiser are not counted) over the loop's wall time; against the device's dense bf16
peak (:func:`bf16_peak_tflops`) where the device is one of :data:`BF16_DENSE_PEAK_TFLOPS`.

Caveat: the CUDA span of a step also counts gaps inside the step in which the GPU waited for the host to
launch kernels (e.g. while ``torch.compile`` compiles during the first steps), so busy is an upper bound
of the time kernels ran; the data wait is what the share is meant to expose.
"""

from __future__ import annotations

import copy
import time
from typing import Sequence

import torch
from torch import nn

#: Dense (no sparsity) bf16 tensor-core peak in TFLOP/s by vendor datasheet, keyed by a part of
#: ``torch.cuda.get_device_name()``; the first match wins, so the specific names come first.
BF16_DENSE_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),  # SXM
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
)


def bf16_peak_tflops(device_name: str | None) -> float | None:
    """The dense bf16 peak of a device named like ``torch.cuda.get_device_name()``; None when unknown."""
    if not device_name:
        return None
    name = device_name.lower()
    for key, peak in BF16_DENSE_PEAK_TFLOPS:
        if key.lower() in name:
            return peak
    return None


def train_step_flops(model: nn.Module, patch_size: Sequence[int], in_channels: int = 4) -> int:
    """FLOPs of the network's forward and backward pass for one sample of ``(in_channels, *patch_size)``.

    Counted on the meta device (nothing allocated) by ``torch.utils.flop_counter``, 2 FLOPs per
    multiply–accumulate; the backward pass is counted as autograd runs it (input gradients of the first
    layer are not needed, so it is a little less than twice the forward).
    """
    from torch.utils.flop_counter import FlopCounterMode

    meta_model = copy.deepcopy(model).to("meta").train()
    x = torch.zeros((1, in_channels, *patch_size), device="meta")
    with FlopCounterMode(display=False) as counter:
        output = meta_model(x)
        outputs = output if isinstance(output, (list, tuple)) else [output]
        sum(o.float().sum() for o in outputs).backward()
    return int(counter.get_total_flops())


class EpochClock:
    """Busy and data-wait accounting of one training epoch (see the module docstring).

    Use::

        clock = EpochClock(device)
        clock.start()
        for batch in loader:
            clock.batch_arrived()
            ...  # the step
            clock.step_done(batch_size)
        figures = clock.finish(flops_per_sample, peak_tflops)
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"

    def start(self) -> None:
        self.started = self._mark = time.perf_counter()
        self.data_wait = 0.0
        self.first_wait: float | None = None
        self.host_busy = 0.0
        self.samples = 0
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._begin: torch.cuda.Event | None = None
        self._step_started = self.started

    def batch_arrived(self) -> None:
        """Call as soon as the loader has handed over a batch (before it is moved to the device)."""
        now = time.perf_counter()
        self.data_wait += now - self._mark
        if self.first_wait is None:
            self.first_wait = now - self._mark
        self._step_started = now
        if self.cuda:
            self._begin = torch.cuda.Event(enable_timing=True)
            self._begin.record()

    def step_done(self, samples: int) -> None:
        """Call after the step's last operation (the optimiser and scheduler steps) has been issued."""
        if self.cuda and self._begin is not None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._events.append((self._begin, end))
            self._begin = None
        now = time.perf_counter()
        self.host_busy += now - self._step_started
        self.samples += int(samples)
        self._mark = now

    def finish(self, flops_per_sample: float | None = None, peak_tflops: float | None = None) -> dict[str, float]:
        """The epoch's figures (waits for the GPU to finish the queued work first):

        ``busy_share``, ``data_wait_seconds`` (of which ``loader_start_seconds``: the wait for the first batch,
        while the loader starts its workers), ``train_loop_seconds`` (the wall time accounted),
        ``samples_per_s``; ``tflops`` with ``flops_per_sample``; ``tflops_peak_share`` with a peak too.
        """
        if self.cuda:
            torch.cuda.synchronize(self.device)
        wall = max(time.perf_counter() - self.started, 1e-9)
        if self.cuda:
            busy = sum(begin.elapsed_time(end) for begin, end in self._events) / 1000.0
        else:
            busy = self.host_busy
        figures = {
            "busy_share": min(1.0, max(0.0, busy / wall)),
            "data_wait_seconds": self.data_wait,
            "loader_start_seconds": self.first_wait or 0.0,
            "train_loop_seconds": wall,
            "samples_per_s": self.samples / wall,
        }
        if flops_per_sample is not None:
            figures["tflops"] = flops_per_sample * self.samples / wall / 1e12
            if peak_tflops:
                figures["tflops_peak_share"] = figures["tflops"] / peak_tflops
        return figures


__all__ = ["BF16_DENSE_PEAK_TFLOPS", "EpochClock", "bf16_peak_tflops", "train_step_flops"]
