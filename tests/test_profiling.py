"""Busy / data-wait accounting of a training epoch, the bf16 peak table and the step FLOP count."""

import time

import pytest
import torch
from torch import nn

from brats_lib import profiling as pf


class SleepyData(torch.utils.data.Dataset):
    """Each item takes ``seconds`` to load."""

    def __init__(self, n: int, seconds: float):
        self.n, self.seconds = n, seconds

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.seconds)
        return torch.zeros(2)


def _run(loader, step_seconds: float, batch: int = 1) -> dict:
    clock = pf.EpochClock("cpu")
    clock.start()
    for _ in loader:
        clock.batch_arrived()
        time.sleep(step_seconds)
        clock.step_done(batch)
    return clock.finish(flops_per_sample=1e12)


def test_a_slow_loader_shows_as_data_wait_and_bounds_the_busy_share():
    n, wait = 5, 0.06
    out = _run(torch.utils.data.DataLoader(SleepyData(n, wait), batch_size=1), step_seconds=0.0)
    wall = out["train_loop_seconds"]
    assert out["data_wait_seconds"] >= n * wait  # a sleep lasts at least its time
    assert 0.0 <= out["busy_share"] <= 1.0 - n * wait / wall + 1e-9
    assert out["data_wait_seconds"] <= wall
    assert wait <= out["loader_start_seconds"] <= out["data_wait_seconds"]
    assert out["samples_per_s"] == pytest.approx(n / wall)
    assert out["tflops"] == pytest.approx(n / wall)  # 1e12 FLOPs per sample
    assert "tflops_peak_share" not in out  # no peak given: not reported


def test_a_slow_step_shows_as_busy():
    n, step = 4, 0.06
    out = _run(range(n), step_seconds=step, batch=2)
    wall = out["train_loop_seconds"]
    assert out["busy_share"] >= n * step / wall - 1e-9
    assert out["busy_share"] <= 1.0
    assert out["samples_per_s"] == pytest.approx(2 * n / wall)


def test_share_of_peak_is_reported_with_a_peak():
    clock = pf.EpochClock("cpu")
    clock.start()
    clock.batch_arrived()
    clock.step_done(3)
    out = clock.finish(flops_per_sample=2e12, peak_tflops=100.0)
    assert out["tflops_peak_share"] == pytest.approx(out["tflops"] / 100.0)
    assert out["tflops"] == pytest.approx(3 * 2.0 / out["train_loop_seconds"])


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0), ("NVIDIA H200 NVL", 835.0), ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA A100 80GB PCIe", 312.0), ("NVIDIA L40S", 362.0),
    ("NVIDIA GeForce RTX 4090", None), ("", None), (None, None),
])
def test_bf16_peak_by_device_name(name, peak):
    assert pf.bf16_peak_tflops(name) == peak


def test_train_step_flops_known_answer():
    """conv1 4→8 (3³) then conv2 8→2 (1³) on 8³: forward F1 + F2; backward the weight gradients of both and
    the input gradient of conv2 only (the input needs none): 2·F1 + 3·F2 in all."""
    model = nn.Sequential(nn.Conv3d(4, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Conv3d(8, 2, 1, bias=False))
    f1, f2 = 2 * 8 * 4 * 27 * 8**3, 2 * 2 * 8 * 8**3
    assert pf.train_step_flops(model, (8, 8, 8)) == 2 * f1 + 3 * f2
    assert next(model.parameters()).device.type == "cpu"  # counted on a copy
