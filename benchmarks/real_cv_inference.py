"""Inference settings on a finished real-data cross-validation: mirroring TTA and region probability thresholds.

Takes a cross-validation directory that ``real_sample_train.py --cv K`` finished, re-predicts every fold's
validation cases with that fold's ``last.pt`` (the checkpoint the cross-validation scored) under each setting,
and scores each setting exactly as the cross-validation does (:func:`brats_lib.crossval.score_folds`: the
official lesion-wise metric on the original grids; post-processing cross-fitted, tuned on the other folds'
predictions). No training; the original directory is only read.

    python benchmarks/real_cv_inference.py --cv-dir runs/real-cv/m15-dr6-regions \
        --out runs/real-cv/m15-dr6-regions-inference --settings "tta=0;tta=1;tta=0,wt=0.3;tta=0,wt=0.4,tc=0.4,et=0.4"

A setting is ``tta=0|1`` plus, for a cross-validation with sigmoid region outputs (``--output-mode regions``),
optional probability thresholds per region output ``wt=``, ``tc=``, ``et=``, ``rc=`` (default 0.5, the
threshold ``brats predict`` uses). Each setting's cross-validation directory is ``OUT/<name>/`` (readable by
:func:`brats_lib.crossval.read_results` and notebook 12); probabilities are computed once per case and TTA
setting and kept in ``OUT/probabilities/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import torch

from brats_lib import crossval
from brats_lib._atomic import write_text_atomic
from brats_lib.inference import load_ensemble, predict_case
from brats_lib.io import load_case, save_label_map
from brats_lib.models import decode_probabilities
from brats_lib.preprocess import invert_label

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
OUTPUTS = ("wt", "tc", "et", "rc")  # the region outputs' channel order (brats_lib.models.heads)


def fail(message: str) -> NoReturn:
    """A user error: one line on stderr, exit status 2."""
    print(f"real_cv_inference.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_setting(text: str) -> dict:
    """``"tta=1,wt=0.3"`` → ``{"tta": True, "thresholds": (0.3, 0.5, 0.5, 0.5), "name": "tta1-wt0.3"}``."""
    setting = {"tta": False, "thresholds": [0.5] * len(OUTPUTS)}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, _, value = item.partition("=")
        try:
            if key == "tta" and value in ("0", "1"):
                setting["tta"] = value == "1"
            elif key in OUTPUTS and 0.0 < float(value) < 1.0:
                setting["thresholds"][OUTPUTS.index(key)] = float(value)
            else:
                raise ValueError
        except ValueError:
            fail(f"--settings: {item!r} is not tta=0|1 or a region threshold wt|tc|et|rc in (0, 1)")
    changed = [f"{k}{t:g}" for k, t in zip(OUTPUTS, setting["thresholds"]) if t != 0.5]
    setting["name"] = "-".join([f"tta{int(setting['tta'])}"] + changed)
    setting["thresholds"] = tuple(setting["thresholds"])
    return setting


def decode(probs: torch.Tensor, mode: str, thresholds: tuple[float, ...]) -> np.ndarray:
    """Labels from (C, x, y, z) probabilities with one threshold per region output (softmax: argmax)."""
    if mode == "regions":
        # decode_probabilities thresholds every output at 0.5: shift each output so its threshold lands there
        shift = torch.tensor([0.5 - t for t in thresholds], dtype=probs.dtype).view(-1, 1, 1, 1)
        probs = probs + shift
    return decode_probabilities(probs[None], mode)[0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cv-dir", required=True, help="a finished real_sample_train.py --cv directory")
    parser.add_argument("--out", required=True, help="where each setting's cross-validation directory goes")
    parser.add_argument("--settings", default="tta=0;tta=1",
                        help="settings separated by ';', each tta=0|1 plus optional wt=, tc=, et=, rc= thresholds")
    parser.add_argument("--data-dir", default=str(REAL))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cv_dir, out, data_dir = Path(args.cv_dir), Path(args.out), Path(args.data_dir)
    if not data_dir.is_dir():
        fail(f"{data_dir}: real sample cases not found (../shared is absent)")
    try:
        folds = crossval.load_folds(cv_dir / crossval.FOLDS_FILE)
    except (OSError, ValueError) as exc:
        fail(f"{cv_dir}: not a finished cross-validation ({exc})")
    runs = [crossval.run_dir_of(cv_dir, i) for i in range(len(folds))]
    missing = [str(r / "last.pt") for r in runs if not (r / "last.pt").exists()]
    if missing:
        fail(f"{cv_dir}: not a finished cross-validation ({missing[0]} is missing)")
    if out.resolve() == cv_dir.resolve() or cv_dir.resolve() in out.resolve().parents:
        fail(f"--out {out}: must lie outside --cv-dir (the cross-validation is only read)")
    settings = [parse_setting(s) for s in args.settings.split(";") if s.strip()]
    if not settings:
        fail("--settings: no setting given")
    mode = load_ensemble(runs[0], checkpoint="last.pt", device="cpu").output_mode
    if mode != "regions" and any(s["thresholds"] != (0.5,) * len(OUTPUTS) for s in settings):
        fail(f"{cv_dir}: its networks have {mode} outputs; region thresholds need --output-mode regions")
    cases = {c.case_id: c for c in crossval.labelled_cases(data_dir)}

    prob_dir = out / "probabilities"
    prob_dir.mkdir(parents=True, exist_ok=True)

    def probabilities(fold: int, case_id: str, tta: bool):
        path = prob_dir / f"tta{int(tta)}-{case_id}.pt"
        if not path.exists():
            start = time.perf_counter()
            loaded = load_case(dataclasses.replace(cases[case_id], seg_path=None))
            _, probs, meta = predict_case(runs[fold], loaded, device=args.device, tta=tta, postprocess=False,
                                          checkpoint="last.pt", return_probabilities=True)
            record = {"probs": probs.half(), "meta": meta, "geometry": loaded.geometry}
            torch.save(record, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
            print(f"fold {fold} {case_id} (TTA {'on' if tta else 'off'}): {time.perf_counter() - start:.1f} s",
                  flush=True)
        return torch.load(path, weights_only=False)

    rows = []
    for setting in settings:
        target = out / setting["name"]
        if not (target / crossval.SUMMARY_FILE).exists():
            if target.exists():
                shutil.rmtree(target)  # an interrupted earlier attempt
            target.mkdir(parents=True)
            shutil.copy(cv_dir / crossval.FOLDS_FILE, target / crossval.FOLDS_FILE)
            for i, fold in enumerate(folds):
                crossval.run_dir_of(target, i).mkdir(parents=True)  # receives the fold's tuned postprocess.json
                summary = cv_dir / f"fold{i}" / "train_summary.json"
                if summary.exists():
                    shutil.copy(summary, target / f"fold{i}" / summary.name)
                for case_id in fold["val"]:
                    record = probabilities(i, case_id, setting["tta"])
                    label = decode(record["probs"].float(), mode, setting["thresholds"])
                    save_label_map(invert_label(label, record["meta"]), record["geometry"],
                                   crossval.raw_prediction_path(target, i, case_id))
            write_text_atomic(target / "inference.json", json.dumps(
                {"from_cv": str(cv_dir), "tta": setting["tta"], "thresholds": dict(zip(OUTPUTS, setting["thresholds"])),
                 "checkpoint": "last.pt"}, indent=1))
            crossval.score_folds(target, data_dir, ("none", "rules"), log=lambda line: None)
        summary = crossval.read_results(target).summary
        for variant in ("none", "rules"):
            sel = summary[(summary.fold == "all") & (summary.variant == variant)].set_index("region")
            rows.append({"setting": setting["name"], "variant": variant,
                         **{f"{r} lesion-wise": sel.loc[r, "lesionwise_dice"] for r in ("WT", "TC", "ET")},
                         **{f"{r} whole-region": sel.loc[r, "legacy_dice"] for r in ("WT", "TC", "ET")},
                         "n_patients": int(sel.loc["WT", "n_patients"])})
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
