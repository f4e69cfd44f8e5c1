import math

import pytest
import torch
import torch.nn.functional as F

from brats_lib.losses import (CrossEntropyLoss, DeepSupervisionLoss, DiceCELoss, SoftDiceLoss, build_loss,
                              soft_dice_per_channel)


def test_cross_entropy_matches_hand_computation():
    logits = torch.zeros(1, 5, 2, 1, 1)
    logits[0, 2, 0] = math.log(4.0)  # voxel 0: p(label 2) = 4 / (4 + 4·1) = 0.5
    target = torch.tensor([2, 0]).reshape(1, 2, 1, 1)
    # voxel 1: uniform logits, p = 1/5
    expected = -(math.log(0.5) + math.log(0.2)) / 2
    assert CrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_soft_dice_hand_values():
    probs = torch.tensor([0.5, 0.5, 0.0, 1.0]).reshape(1, 1, 4, 1, 1)
    onehot = torch.tensor([1.0, 0.0, 0.0, 1.0]).reshape(1, 1, 4, 1, 1)
    # intersection 1.5, sums 2 + 2 → 3 / 4
    assert soft_dice_per_channel(probs, onehot, smooth=0).item() == pytest.approx(0.75)
    # an empty channel in both prediction and target counts as perfect (smooth term)
    zeros = torch.zeros(1, 1, 4, 1, 1)
    assert soft_dice_per_channel(zeros, zeros).item() == pytest.approx(1.0)


def test_batch_dice_differs_from_sample_dice():
    probs = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).reshape(2, 1, 2, 1, 1)
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(2, 1, 2, 1, 1)
    batch = soft_dice_per_channel(probs, onehot, batch_dice=True, smooth=0)
    sample = soft_dice_per_channel(probs, onehot, batch_dice=False, smooth=0)
    assert batch.item() == pytest.approx(2 / 3)
    assert sample[:, 0].tolist() == pytest.approx([1.0, 0.0])


def test_perfect_logits_give_near_zero_dice_ce():
    target = torch.randint(0, 5, (2, 4, 4, 4))
    logits = F.one_hot(target, 5).movedim(-1, 1).float() * 30
    assert DiceCELoss("softmax")(logits, target).item() < 1e-4
    assert SoftDiceLoss("softmax")(logits, target).item() < 1e-4


def test_region_bce_dice_hand_value():
    target = torch.tensor([[2, 4]]).reshape(1, 2, 1, 1)  # SNFH voxel, RC voxel
    logits = torch.zeros(1, 4, 2, 1, 1)  # all probabilities 0.5
    # BCE = ln 2 everywhere. Dice per region (batch): WT: p=1, g=1, I=0.5 → 1/2; TC: I=0, g=0 → ~0; ET: same; RC: 1/2
    dice = (0.5 + 0 + 0 + 0.5) / 4
    expected = math.log(2) + (1 - dice)
    assert DiceCELoss("regions")(logits, target).item() == pytest.approx(expected, rel=1e-4)


def test_nothing_is_ignored_silently():
    logits = torch.zeros(1, 5, 2, 2, 2)
    with pytest.raises(ValueError, match="outside 0–4"):
        DiceCELoss()(logits, torch.full((1, 2, 2, 2), 7))
    with pytest.raises(ValueError, match="expects 5 channels"):
        DiceCELoss()(torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 2, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="does not match"):
        DiceCELoss()(logits, torch.zeros(1, 3, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"min -1, max 4"):
        DiceCELoss()(logits, torch.tensor([-1, 4, 0, 0, 0, 0, 0, 0]).reshape(1, 2, 2, 2))


def test_label_range_check_never_reads_an_accelerator_tensor_back():
    # a meta tensor has no values: reading one back (a host sync on a GPU) would raise
    from brats_lib.losses import _check

    _check(torch.zeros(1, 5, 2, 2, 2, device="meta"), torch.zeros(1, 2, 2, 2, dtype=torch.long, device="meta"),
           "softmax")
    with pytest.raises(ValueError, match="expects 5 channels"):  # shape checks still run everywhere
        _check(torch.zeros(1, 4, 2, 2, 2, device="meta"), torch.zeros(1, 2, 2, 2, device="meta"), "softmax")
    with pytest.raises(ValueError, match="softmax output mode"):
        build_loss("ce", "regions")


def test_deep_supervision_weights_and_downsampled_targets():
    target = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    target[:, :4] = 2
    full = F.one_hot(target, 5).movedim(-1, 1).float() * 30
    half = torch.zeros(1, 5, 4, 4, 4)  # uniform: CE = ln 5
    base = CrossEntropyLoss()
    ds = DeepSupervisionLoss(base)
    expected = (1 / 1.5) * base(full, target).item() + (0.5 / 1.5) * math.log(5)
    assert ds([full, half], target).item() == pytest.approx(expected, rel=1e-5)
    assert isinstance(build_loss("dice_ce", deep_supervision=True), DeepSupervisionLoss)
