"""Synthetic follow-up timepoints: same anatomy, the lesion changes as planned, deterministic, written in the
BraTS 2024 layout as BraTS-GLI-PPPPP-001."""

import numpy as np
import pytest

from brats_lib import io
from brats_lib.labels import ET, NETC, RC, SNFH
from brats_lib.synthetic import CHANGES, case_id_for, followup_changes, generate_dataset, synthesise_case
from brats_lib.synthetic.followup import change_plan
from brats_lib.synthetic.lesions import Cavity, CasePlan, Edema, Focus

SEED = 0


def test_followup_rule_and_ids():
    assert {i: followup_changes(SEED, i) for i in range(24) if followup_changes(SEED, i)} == {
        3: ("grow",), 9: ("shrink",), 15: ("resect",), 21: ("grow",)}
    assert case_id_for(9, 1) == "BraTS-GLI-00009-001" and case_id_for(9) == "BraTS-GLI-00009-000"
    with pytest.raises(ValueError, match="timepoints 0..0"):
        synthesise_case(SEED, 1, timepoint=1)


def test_change_plan_scales_and_resects():
    plan = CasePlan("x", [Focus(np.zeros(3), 10.0, 0.5)], [Cavity(np.ones(3), 12.0)], [Edema(np.zeros(3), 20.0)],
                    [(np.zeros(3), 5.0, 0.2)], 0)
    grown, shrunk, resected = (change_plan(plan, c) for c in CHANGES)
    assert grown.foci[0].radius == pytest.approx(13.5) and grown.edemas[0].radius == pytest.approx(25.0)
    assert shrunk.foci[0].radius == pytest.approx(6.0) and shrunk.edemas[0].radius == pytest.approx(15.0)
    assert resected.foci == [] and len(resected.cavities) == 2 and resected.cavities[1].radius == pytest.approx(11.5)
    for changed in (grown, shrunk, resected):
        assert changed.pushes == plan.pushes  # same mass effect, hence the same deformed anatomy
    assert plan.foci[0].radius == 10.0  # the baseline plan is not modified
    with pytest.raises(ValueError, match="unknown change"):
        change_plan(plan, "vanish")


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    out = tmp_path_factory.mktemp("followup")
    folders = generate_dataset(out, n_cases=2, start=2, seed=SEED, workers=1, progress=False, followups=True)
    assert [f.name for f in folders] == ["BraTS-GLI-00002-000", "BraTS-GLI-00003-000", "BraTS-GLI-00003-001"]
    cases = [c for c in io.discover_cases(out) if c.patient_id == "00003"]
    assert [c.timepoint for c in cases] == ["000", "001"]
    return [io.load_case(c) for c in cases]


def test_followup_keeps_anatomy_and_grows_the_lesion(patient):
    baseline, followup = patient
    np.testing.assert_array_equal(baseline.image[0] != 0, followup.image[0] != 0)  # same brain
    np.testing.assert_array_equal(baseline.geometry.affine, followup.geometry.affine)
    assert not np.array_equal(baseline.image, followup.image)  # a new scan, new noise
    before, after = (np.bincount(c.label.ravel(), minlength=5) for c in patient)
    assert followup_changes(SEED, 3) == ("grow",)
    assert after[NETC] + after[ET] > 1.3 * (before[NETC] + before[ET])  # tumour core grows
    assert after[SNFH] + after[NETC] + after[ET] > before[SNFH] + before[NETC] + before[ET]
    assert before[RC] > 0 and after[RC] > 0  # a multifocal case: its resection cavity is still there


def test_followup_is_deterministic(patient):
    image, seg, meta = synthesise_case(SEED, 3, timepoint=1)
    np.testing.assert_array_equal(seg, patient[1].label)
    np.testing.assert_array_equal(image, patient[1].image)
    assert meta["case_id"] == "BraTS-GLI-00003-001" and meta["change"] == "grow" and meta["timepoint"] == 1
