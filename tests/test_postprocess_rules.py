"""Post-processing rules beyond a size threshold (brats_lib.inference.postprocess.apply_rules), their tuning by
the lesion-wise score (brats_lib.postprocess_tuning.tune_postprocess), storage in postprocess.json and use at
prediction time. Known answers on hand-built label maps."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from brats_lib.inference import (Ensemble, apply_rules, check_rules, load_postprocess_rules, load_postprocessing,
                                 postprocess_label, predict_case, remove_small_components)
from brats_lib.io import discover_cases, load_case
from brats_lib.postprocess_tuning import save_postprocessing, tune_postprocess
from brats_lib.preprocess import PreprocessConfig
from conftest import write_tiny_case

SHAPE = (40, 40, 40)


def _main_and_satellite(satellite_at=20, core_in_satellite=False):
    """Main tumour: a 10³ box (1000 voxels, x 0..9) of SNFH with an ET 4³ inside; satellite: 30 SNFH voxels
    (3·5·2) starting at x = ``satellite_at`` (gap to the main box: satellite_at − 9 voxels along x)."""
    label = np.zeros(SHAPE, np.uint8)
    label[0:10, 10:20, 10:20] = 2
    label[3:7, 13:17, 13:17] = 3
    x = satellite_at
    label[x:x + 3, 12:17, 14:16] = 2
    if core_in_satellite:
        label[x + 1, 14, 14:16] = 3
    return label


def _satellite(label, satellite_at=20):
    mask = np.zeros(label.shape, bool)
    mask[satellite_at:satellite_at + 3, 12:17, 14:16] = True
    return mask


def test_wt_min_fraction_removes_components_smaller_than_a_fraction_of_the_main_one():
    label = _main_and_satellite()
    sat = _satellite(label)
    out = apply_rules(label, {"wt_min_fraction": 0.05})  # 30 < 0.05 · 1000 = 50: removed
    assert out[sat].max() == 0 and (out[~sat] == label[~sat]).all()
    np.testing.assert_array_equal(apply_rules(label, {"wt_min_fraction": 0.03}), label)  # 30 is not < 30
    np.testing.assert_array_equal(apply_rules(label, {"wt_min_fraction": 0.0}), label)
    assert label[sat].min() == 2  # input untouched


def test_wt_min_fraction_one_keeps_only_the_largest_component():
    label = _main_and_satellite()
    label[30:36, 30:36, 30:36] = 2  # a third component, 216 voxels
    out = apply_rules(label, {"wt_min_fraction": 1.0})
    assert (out > 0).sum() == 1000 and (out[0:10, 10:20, 10:20] == label[0:10, 10:20, 10:20]).all()


def test_wt_max_gap_mm_removes_components_far_from_the_main_one_in_mm():
    label = _main_and_satellite(satellite_at=20)  # nearest voxel centres: x 9 and x 20 → 11 voxels
    sat = _satellite(label)
    assert apply_rules(label, {"wt_max_gap_mm": 10.0})[sat].max() == 0
    np.testing.assert_array_equal(apply_rules(label, {"wt_max_gap_mm": 11.0}), label)
    np.testing.assert_array_equal(apply_rules(label, {"wt_max_gap_mm": None}), label)
    # 2 mm voxels along x: 22 mm
    assert apply_rules(label, {"wt_max_gap_mm": 21.0}, spacing=(2.0, 1.0, 1.0))[sat].max() == 0
    np.testing.assert_array_equal(apply_rules(label, {"wt_max_gap_mm": 22.0}, spacing=(2.0, 1.0, 1.0)), label)


def test_core_in_main_wt_turns_satellite_core_into_snfh_and_keeps_the_main_core():
    label = _main_and_satellite(core_in_satellite=True)
    out = apply_rules(label, {"core_in_main_wt": True})
    sat = _satellite(label)
    assert (out[sat] == 2).all()  # the satellite stays whole tumour, without ET
    assert (out[3:7, 13:17, 13:17] == 3).all()  # the main tumour's ET is kept
    assert ((out > 0) == (label > 0)).all()
    np.testing.assert_array_equal(apply_rules(label, {"core_in_main_wt": False}), label)


def test_et_min_total_voxels_turns_a_small_total_et_into_netc():
    label = _main_and_satellite()  # 64 ET voxels
    out = apply_rules(label, {"et_min_total_voxels": 65})
    assert not (out == 3).any() and (out[3:7, 13:17, 13:17] == 1).all()
    np.testing.assert_array_equal(apply_rules(label, {"et_min_total_voxels": 64}), label)  # 64 is not < 64
    no_et = np.where(label == 3, 2, label).astype(np.uint8)
    np.testing.assert_array_equal(apply_rules(no_et, {"et_min_total_voxels": 10**6}), no_et)


def test_a_single_component_and_an_empty_map_are_left_alone():
    label = np.zeros(SHAPE, np.uint8)
    all_on = {"wt_min_fraction": 1.0, "wt_max_gap_mm": 0.0, "core_in_main_wt": True}
    np.testing.assert_array_equal(apply_rules(label, all_on), label)
    label[5:10, 5:10, 5:10] = 3
    np.testing.assert_array_equal(apply_rules(label, all_on), label)


def test_rule_validation():
    assert check_rules(None) == {"wt_min_fraction": 0.0, "wt_max_gap_mm": None, "core_in_main_wt": False,
                                 "et_min_total_voxels": 0}
    for bad in ({"wt_min_fraction": 1.5}, {"wt_max_gap_mm": -1}, {"core_in_main_wt": 1},
                {"et_min_total_voxels": 2.5}, {"keep_largest": True}):
        with pytest.raises(ValueError):
            check_rules(bad)


def test_postprocess_label_applies_thresholds_then_rules():
    label = _main_and_satellite()
    label[30:34, 30:34, 30:34] = 2  # 64 voxels, another satellite
    spec = {"min_component_voxels": {"WT": 40}, "rules": {"wt_min_fraction": 0.05}}
    out = postprocess_label(label, spec)
    expected = label.copy()
    expected[_satellite(label)] = 0  # 30 voxels < 40
    expected[30:34, 30:34, 30:34] = 2  # 64 ≥ 50: kept by both
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out, apply_rules(remove_small_components(label, {"WT": 40}),
                                                   {"wt_min_fraction": 0.05}))
    np.testing.assert_array_equal(postprocess_label(label, None), label)


def test_tuning_chooses_the_rule_that_removes_a_false_positive_no_threshold_can():
    gts, preds = [], []
    for shift in (0, 2):
        gt = np.zeros(SHAPE, np.uint8)
        gt[shift:shift + 10, 10:20, 10:20] = 2
        gt[shift + 3:shift + 7, 13:17, 13:17] = 3
        pred = gt.copy()
        pred[25:29, 25:29, 25:29] = 2  # a 64-voxel false positive, above the largest threshold tried (50)
        gts.append(gt)
        preds.append(pred)
    record, table = tune_postprocess(preds, gts, candidates={"WT": [0, 50]},
                                     rule_candidates={"wt_min_fraction": (0.0, 0.05, 0.1, 0.2)},
                                     return_table=True)
    assert record["min_component_voxels"] == {"WT": 0}
    assert record["rules"]["wt_min_fraction"] == 0.1  # 64 < 100; 0.2 ties and comes later
    scores = table[table.step == "wt_min_fraction"].set_index("value")["score"]
    assert scores[0.1] == pytest.approx(1.0) and scores[0.05] < 1.0
    size_only = tune_postprocess(preds, gts, rules=False, candidates={"WT": [0, 50]})
    assert size_only["rules"] == check_rules(None)


def test_tuning_cache_is_reused_across_calls():
    gt = _main_and_satellite()
    cache = {}
    tune_postprocess([gt], [gt], candidates={"WT": [0, 50]}, rule_candidates={"core_in_main_wt": (False, True)},
                     cache=cache)
    n = len(cache)
    assert n >= 1
    tune_postprocess([gt], [gt], candidates={"WT": [0, 50]}, rule_candidates={"core_in_main_wt": (False, True)},
                     cache=cache)
    assert len(cache) == n


def test_rules_are_saved_loaded_and_applied_at_prediction(tmp_path):
    save_postprocessing(tmp_path, {"WT": 50}, rules={"et_min_total_voxels": 300})
    record = json.loads((tmp_path / "postprocess.json").read_text())
    assert record["rules"]["et_min_total_voxels"] == 300
    assert load_postprocessing(tmp_path) == {"WT": 50}
    assert load_postprocess_rules(tmp_path)["et_min_total_voxels"] == 300
    save_postprocessing(tmp_path / "plain", {"WT": 50})
    assert load_postprocess_rules(tmp_path / "plain") is None

    write_tiny_case(tmp_path / "raw", 0)
    loaded = load_case(discover_cases(tmp_path / "raw")[0])

    class AllET(nn.Module):
        def forward(self, x):
            logits = torch.zeros((x.shape[0], 5) + tuple(x.shape[2:]))
            logits[:, 3] = 10.0
            return logits

    ensemble = Ensemble([AllET()], "softmax", (32, 32, 32), PreprocessConfig(downsample=1),
                        postprocess_rules={"et_min_total_voxels": 10**9})
    raw = predict_case(ensemble, loaded, device="cpu", tta=False, postprocess=False)
    assert (raw == 3).any()
    ruled = predict_case(ensemble, loaded, device="cpu", tta=False, postprocess=True)
    np.testing.assert_array_equal(ruled, np.where(raw == 3, 1, raw))
    record = {"min_component_voxels": {}, "rules": {"et_min_total_voxels": 10**9}}
    np.testing.assert_array_equal(predict_case(ensemble, loaded, device="cpu", tta=False, postprocess=record),
                                  ruled)
