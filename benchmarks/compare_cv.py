"""Compare finished cross-validations of the same folds with an endpoint fixed before running (issue 12's
real-data arm): per patient, the mean official lesion-wise Dice over the six regions; per arm, the mean over
patients, the paired difference from the baseline arm and its 95 % bootstrap interval over the patients.

Usage (from the repository root; reads the cross-validation directories only)::

    python benchmarks/compare_cv.py --arm real=runs/real-cv/m15 --arm copy_paste=runs/real-cv/m15-cp6 \
        --arm gan=runs/real-cv/m15-gan6 --out runs/real-cv/gan-arm

A patient in both releases (``BraTS-GLI-00002-000`` and ``BraTS2021_00002``) counts once: its cases are averaged
per region first, as :func:`brats_lib.crossval.aggregate` does. ``--variant`` picks the post-processing the
endpoint uses (default ``none``: the raw predictions, so that tuned post-processing does not mix with the arms'
difference). Writes ``OUT/experiment.csv`` (arm, fraction, patient, case, region, dice, hd95: the lesion-wise
scores of every validation case) and ``OUT/summary.csv`` (the endpoint table), and prints both with n.
``--conspicuity`` also measures, for each arm whose folds made their own inserted-tumour cases
(``real_sample_train.py --synthetic-method copy_paste|gan``: ``fold<i>/inserted/cases``), how visible those
tumours are against the donors' own (:func:`brats_lib.gan.quality.conspicuity`), over all folds, into
``OUT/conspicuity.csv``.
A user error (a missing or unfinished directory, arms of different folds) ends in one line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brats_lib import crossval  # noqa: E402
from brats_lib._atomic import write_text_atomic  # noqa: E402
from brats_lib.analysis.paired import paired_summary  # noqa: E402
from brats_lib.labels import REGION_ORDER  # noqa: E402


def fail(message: str) -> None:
    print(f"compare_cv.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arm", action="append", required=True, metavar="NAME=CV_DIR",
                   help="an arm and its finished cross-validation directory; the first is the baseline")
    p.add_argument("--variant", default="none", help="post-processing variant of the endpoint (none, size, rules)")
    p.add_argument("--out", required=True, help="folder for experiment.csv and summary.csv")
    p.add_argument("--fraction", type=float, default=1.0, help="the training fraction recorded in the tables")
    p.add_argument("--conspicuity", action="store_true",
                   help="also measure how visible each arm's inserted tumours are (arms with fold<i>/inserted/cases)")
    args = p.parse_args(argv)
    arms = {}
    for item in args.arm:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            fail(f"--arm {item!r}: expected NAME=CV_DIR")
        if name in arms:
            fail(f"--arm {name}: given twice")
        try:
            arms[name] = crossval.read_results(folder)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            fail(f"--arm {name}: {exc}")
    if len(arms) < 2:
        fail("give at least two --arm (the first is the baseline)")
    baseline = next(iter(arms))
    for name, result in arms.items():
        if result.folds != arms[baseline].folds:
            fail(f"--arm {name}: {result.cv_dir} has other folds than {arms[baseline].cv_dir}; compare the same folds")
        if args.variant not in result.variants:
            fail(f"--arm {name}: {result.cv_dir} has no post-processing variant {args.variant!r} "
                 f"(has {result.variants})")
    rows = []
    for name, result in arms.items():
        scores = result.scores[result.scores["variant"] == args.variant]
        for _, r in scores.iterrows():
            rows.append({"arm": name, "fraction": args.fraction, "patient": r["patient"], "case": r["case"],
                         "region": r["region"], "dice": r["lesionwise_dice"], "hd95": r["lesionwise_hd95"]})
    experiment = pd.DataFrame(rows)
    by_patient = experiment.groupby(["arm", "patient", "region"])["dice"].mean()  # a patient's cases first
    per_patient = by_patient.groupby(["arm", "patient"]).mean().unstack("arm")[list(arms)]
    summary = paired_summary(per_patient, baseline)
    regions = by_patient.groupby(["arm", "region"]).mean().unstack("region")[list(REGION_ORDER)].loc[list(arms)]
    summary = summary.merge(regions.reset_index(), on="arm")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "experiment.csv", experiment.to_csv(index=False))
    write_text_atomic(out / "summary.csv", summary.to_csv(index=False))
    write_text_atomic(out / "command.json", json.dumps({"arms": {k: str(v.cv_dir) for k, v in arms.items()},
                                                       "variant": args.variant}, indent=1))
    print(per_patient.round(3).to_string())
    print(f"\nendpoint: mean lesion-wise Dice over the six regions per patient, variant {args.variant!r}, "
          f"paired with {baseline!r}, 95 % bootstrap interval over n = {len(per_patient)} patients "
          f"({experiment['case'].nunique()} cases)")
    print(summary.round(3).to_string(index=False))
    if args.conspicuity:
        visible = inserted_conspicuity(arms)
        if visible is None:
            print("no arm made inserted-tumour cases per fold: no conspicuity to measure")
        else:
            write_text_atomic(out / "conspicuity.csv", visible.to_csv())
            print("\nconspicuity (label mean − surrounding brain mean, in brain SDs; all folds; n = tumours):")
            print(visible.round(2).to_string())
    print(f"wrote {out / 'experiment.csv'} and {out / 'summary.csv'}")


def inserted_conspicuity(arms) -> pd.DataFrame | None:
    """:func:`brats_lib.gan.quality.conspicuity_summary` of every fold's inserted tumours per arm (the arm's
    name is the group), beside the donors' own tumours; None when no arm has per-fold inserted cases."""
    from brats_lib.gan.quality import conspicuity_summary, insertion_conspicuity

    tables, donors = [], set()
    for name, result in arms.items():
        folders = [result.cv_dir / f"fold{i}" / "inserted" / "cases" for i in range(len(result.folds))]
        folders = [f for f in folders if (f / "provenance.csv").is_file()]
        if folders:
            data_dir = json.loads((result.cv_dir / crossval.FOLDS_FILE).read_text(encoding="utf-8"))["data_dir"]
        for folder in folders:
            tables.append(insertion_conspicuity(folder, data_dir, name, skip_donors=donors))
            donors.update(tables[-1].loc[tables[-1]["tumours"] == "the donors' own", "case"])
    return conspicuity_summary(pd.concat(tables)) if tables else None


if __name__ == "__main__":
    main()
