"""Why did an arm of issue 12's experiment lose? Reads a finished ``benchmarks/gan_experiment.py`` folder.

Usage (from the repository root; reads only, about a minute on 2 cores)::

    python benchmarks/gan_experiment_analysis.py --out runs/study/gan_experiment_f05 --fraction 0.5

Three tables, each printed with its n and written to ``OUT/analysis/``:

* ``voxels.csv`` — per arm, summed over the test cases: each region's voxel recall and precision, and the
  false-positive volume outside every true tumour (mL). Voxel-level figures beside the lesion-wise ones tell a
  worse segmentation from more false-positive *components*, which the lesion-wise Dice counts as lesions of
  Dice 0;
* ``components.csv`` — per arm and region, the mean over test cases of the official lesion-wise Dice, the
  whole-region ("legacy") Dice and the number of false-positive components (``Num_FP``);
* ``conspicuity.csv`` — how visible the inserted tumours are (:func:`brats_lib.gan.quality.conspicuity`: each
  label's mean minus the surrounding brain's, in brain standard deviations, per contrast) against the same
  donors' tumours in their own cases: the median and the minimum over the inserted cases.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brats_lib._atomic import write_text_atomic  # noqa: E402
from brats_lib.analysis.errors import confusion_matrix  # noqa: E402
from brats_lib.gan.quality import conspicuity_summary, insertion_conspicuity  # noqa: E402
from brats_lib.io import discover_cases, load_case, load_label  # noqa: E402
from brats_lib.labels import REGION_ORDER, REGIONS  # noqa: E402
from brats_lib.metrics import lesion_wise_results  # noqa: E402

ARMS = ("real", "copy_paste", "gan")


def fail(message: str) -> None:
    print(f"gan_experiment_analysis.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def voxel_rows(arm: str, matrix: np.ndarray, voxel_ml: float) -> list[dict]:
    rows = []
    for region in REGION_ORDER:
        labels = list(REGIONS[region])
        tp = matrix[np.ix_(labels, labels)].sum()
        gt, pred = matrix[labels, :].sum(), matrix[:, labels].sum()
        rows.append({"arm": arm, "region": region, "recall": tp / gt if gt else np.nan,
                     "precision": tp / pred if pred else np.nan,
                     "fp_outside_tumour_ml": matrix[0, labels].sum() * voxel_ml})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the gan_experiment.py output folder")
    p.add_argument("--fraction", type=float, default=1.0, help="which training fraction's arms to analyse")
    p.add_argument("--data", default="data/synthetic", help="the dataset the sources and donors came from")
    args = p.parse_args(argv)
    out, tag = Path(args.out), f"{args.fraction:g}"
    needed = [out / "test_data"] + [out / "pred" / f"{arm}_{tag}" for arm in ARMS] + [
        out / f"cases_{arm}_{tag}" / "provenance.csv" for arm in ARMS[1:]]
    missing = [path for path in needed if not path.exists()]
    if missing:
        fail(f"{missing[0]}: missing (run benchmarks/gan_experiment.py --out {out} --fractions {tag} first)")
    tests = discover_cases(out / "test_data")
    truths = {}
    for case in tests:  # once for every arm: the label map and its voxel size
        truth = load_case(case)
        truths[case.case_id] = truth.label, truth.geometry.spacing
    voxels, components = [], []
    for arm in ARMS:
        total = np.zeros((5, 5), np.int64)
        for case in tests:
            label, spacing = truths[case.case_id]
            pred = load_label(out / "pred" / f"{arm}_{tag}" / f"{case.case_id}.nii.gz")
            total += confusion_matrix(pred, label)
            results, _ = lesion_wise_results(pred, label, spacing)
            for _, r in results.iterrows():
                components.append({"arm": arm, "case": case.case_id, "region": r["Labels"],
                                   "lesionwise_dice": r["LesionWise_Score_Dice"], "legacy_dice": r["Legacy_Dice"],
                                   "num_fp": r["Num_FP"]})
        voxels += voxel_rows(arm, total, float(np.prod(spacing)) / 1000)
    voxels, components = pd.DataFrame(voxels), pd.DataFrame(components)
    copy_paste = insertion_conspicuity(out / f"cases_copy_paste_{tag}", args.data, "copy_paste")
    gan = insertion_conspicuity(out / f"cases_gan_{tag}", args.data, "gan",  # the same donors: measured once
                                skip_donors=set(copy_paste["case"]))
    table = conspicuity_summary(pd.concat([copy_paste, gan]))
    folder = out / "analysis"
    folder.mkdir(exist_ok=True)
    write_text_atomic(folder / "voxels.csv", voxels.to_csv(index=False))
    mean_components = components.groupby(["arm", "region"], sort=False)[["lesionwise_dice", "legacy_dice", "num_fp"]].mean()
    write_text_atomic(folder / "components.csv", mean_components.reset_index().to_csv(index=False))
    write_text_atomic(folder / "conspicuity.csv", table.to_csv())
    pd.set_option("display.width", 200)
    print(f"voxels, summed over n = {len(tests)} test cases (fraction {tag}):")
    print(voxels.pivot(index="region", columns="arm").reindex(REGION_ORDER).round(3).to_string())
    print(f"\nper region, mean over n = {len(tests)} test cases:")
    print(mean_components.unstack("arm").reindex(REGION_ORDER).round(3).to_string())
    print("\nconspicuity (label mean − surrounding brain mean, in brain SDs; n = tumours):")
    print(table.round(2).to_string())
    print(f"wrote {folder}/voxels.csv, components.csv, conspicuity.csv")


if __name__ == "__main__":
    main()
