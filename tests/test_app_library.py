"""brats_lib.app without a browser: upload staging and zip safety, runs, the segmentation job (progress, cancel),
volumes, downloads, the augmentation preview and the page object driven from Python."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brats_lib.app import preview, results
from brats_lib.app.job import Cancelled, SegmentationJob, segment
from brats_lib.app.runs import describe_run, find_runs
from brats_lib.app.upload import (ModalityChoiceNeeded, UploadedFile, Workspace, extract_zip, guess_tag, parse_name,
                                  stage_upload)
from brats_lib.io import BratsInputError, discover_cases, load_case
from conftest import TINY_AFFINE, write_tiny_case

ROOT = Path(__file__).resolve().parents[1]


def as_uploads(paths) -> list[UploadedFile]:
    return [UploadedFile(p.name, p.read_bytes()) for p in paths]


@pytest.fixture(scope="module")
def tiny_case(tmp_path_factory) -> Path:
    return write_tiny_case(tmp_path_factory.mktemp("cases"), 1)


def images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.endswith("-seg.nii.gz"))


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("name, expected", [
    ("BraTS-GLI-00001-000-t1c.nii.gz", ("BraTS-GLI-00001-000", "t1c", "2024")),
    ("BraTS-GLI-00001-000-seg.nii", ("BraTS-GLI-00001-000", "seg", "2024")),
    ("BraTS2021_00002_flair.nii.gz", ("BraTS2021_00002", "t2f", "legacy")),
    ("BraTS2021_00002_t1ce.nii.gz", ("BraTS2021_00002", "t1c", "legacy")),
    ("patient7_t1.nii.gz", ("patient7", "t1n", "legacy")),
    ("scan.nii.gz", None),
    ("BraTS-GLI-00001-000-t1c.txt", None),
])
def test_parse_name(name, expected):
    assert parse_name(name) == expected


def test_guess_tag_from_free_names():
    assert [guess_tag(n) for n in ("AX_FLAIR.nii.gz", "T1_post_gad.nii", "t2_tse.nii.gz", "T1.nii.gz",
                                   "tumour_mask.nii.gz", "scan.nii.gz")] == ["t2f", "t1c", "t2w", "t1n", "seg", ""]


# --------------------------------------------------------------------------------------------------- zip


def test_extract_zip_writes_the_members(tmp_path):
    files = extract_zip(zip_bytes({"case/a.nii.gz": b"abc", "case/sub/b.nii": b"de", "__MACOSX/._a": b"x"}),
                        tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files) == ["case/a.nii.gz", "case/sub/b.nii"]
    assert (tmp_path / "case" / "a.nii.gz").read_bytes() == b"abc"


@pytest.mark.parametrize("entries, words", [
    ({"../evil.nii.gz": b"x"}, "unsafe path '../evil.nii.gz'"),
    ({"case/../../evil.nii.gz": b"x"}, "unsafe path"),
    ({"/etc/evil.nii.gz": b"x"}, "unsafe path"),
    ({"case/inner.zip": b"PK"}, "nested archive"),
    ({"case/a.nii.gz": b"\0" * 2000}, "over the limit"),
])
def test_extract_zip_refuses_unsafe_archives_before_writing(tmp_path, entries, words):
    with pytest.raises(BratsInputError, match=words.replace("(", r"\(").replace(".", r"\.")):
        extract_zip(zip_bytes(entries), tmp_path / "out", max_unpacked_bytes=1000, archive="up.zip")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.nii.gz").exists()


def test_extract_zip_refuses_links_and_non_zips(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo("case/link.nii.gz")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BratsInputError, match="symbolic link"):
        extract_zip(buffer.getvalue(), tmp_path)
    with pytest.raises(BratsInputError, match="up.zip: not a valid zip"):
        extract_zip(b"not a zip at all", tmp_path, archive="up.zip")


def test_a_member_larger_than_it_claims_is_stopped(tmp_path):
    data = bytearray(zip_bytes({"case/a.bin": b"\0" * 5000}))
    # shrink the declared size in both headers: the check before extraction passes, the count stops it
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.infolist()[0]
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 22:local + 26] = (100).to_bytes(4, "little")
    data[central + 24:central + 28] = (100).to_bytes(4, "little")
    assert info.file_size == 5000
    with pytest.raises(BratsInputError):
        extract_zip(bytes(data), tmp_path, max_unpacked_bytes=1000)


# ------------------------------------------------------------------------------------------------ staging


def test_four_named_files_and_a_ground_truth_make_one_case(tiny_case, tmp_path):
    case = stage_upload(as_uploads(sorted(tiny_case.iterdir())), tmp_path)
    assert case.case_id == tiny_case.name and case.layout == "2024"
    assert case.seg_path is not None and set(case.image_paths) == {"t1n", "t1c", "t2w", "t2f"}
    assert all(tmp_path in p.parents for p in case.image_paths.values())
    np.testing.assert_array_equal(load_case(case).image, load_case(discover_cases(tiny_case.parent)[0]).image)


@pytest.mark.parametrize("kind, words", [
    ("three", "got 3 file(s)"),
    ("six", "got 6 file(s)"),
    ("text", "notes.txt: not a NIfTI file"),
    ("zip_and_more", "upload one zip on its own"),
    ("too_big", "over the limit of 0 MB"),
    ("missing", "missing modality"),
])
def test_bad_uploads_raise_one_clear_line(tiny_case, tmp_path, kind, words):
    files = as_uploads(sorted(tiny_case.iterdir()))
    limit = 10**9
    if kind == "three":
        files = files[:3]
    elif kind == "six":
        files = files + [UploadedFile("extra-t1n.nii.gz", files[0].content)]
    elif kind == "text":
        files = files[:3] + [UploadedFile("notes.txt", b"x")]
    elif kind == "zip_and_more":
        files = files[:3] + [UploadedFile("case.zip", zip_bytes({"a": b"a"}))]
    elif kind == "too_big":
        limit = 1000
    elif kind == "missing":
        files = [f for f in files if "-t2f" not in f.name]
    with pytest.raises(BratsInputError) as error:
        stage_upload(files, tmp_path, max_bytes=limit)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_free_names_ask_for_modalities_then_use_the_choice(tiny_case, tmp_path):
    paths = images(tiny_case)  # t1c, t1n, t2f, t2w
    files = [UploadedFile(f"series{i}.nii.gz", p.read_bytes()) for i, p in enumerate(paths)]
    with pytest.raises(ModalityChoiceNeeded) as need:
        stage_upload(files, tmp_path / "a")
    assert need.value.names == [f.name for f in files]
    truth = {f"series{i}.nii.gz": parse_name(p.name)[1] for i, p in enumerate(paths)}
    case = stage_upload(files, tmp_path / "b", choices=truth)
    assert {m: p.name for m, p in case.image_paths.items()} == {m: n for n, m in truth.items()}
    loaded = load_case(case)
    reference = load_case(discover_cases(tiny_case.parent)[0])
    np.testing.assert_array_equal(loaded.image, reference.image)
    with pytest.raises(BratsInputError, match="duplicated 't1n'"):
        stage_upload(files, tmp_path / "c", choices=dict.fromkeys(truth, "t1n"))


def test_a_zip_in_the_2021_layout_is_found_by_io_discovery(tiny_case, tmp_path):
    names = {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair"}
    entries = {f"BraTS2021_00001/BraTS2021_00001_{legacy}.nii.gz":
               (tiny_case / f"{tiny_case.name}-{m}.nii.gz").read_bytes() for m, legacy in names.items()}
    case = stage_upload([UploadedFile("case.zip", zip_bytes(entries))], tmp_path)
    assert case.case_id == "BraTS2021_00001" and case.layout == "legacy"
    flat = {p.name: p.read_bytes() for p in images(tiny_case)}  # loose files at the zip's top level
    case = stage_upload([UploadedFile("flat.zip", zip_bytes(flat))], tmp_path / "flat")
    assert case.case_id == tiny_case.name


def test_workspace_is_private_and_removed_on_close_and_when_its_process_is_killed(tmp_path):
    workspace = Workspace(tmp_path)
    assert stat.S_IMODE(workspace.path.stat().st_mode) == 0o700
    first = workspace.new_folder()
    second = workspace.new_folder()
    assert not first.exists() and second.is_dir()  # one upload at a time
    assert workspace.relative(f"{second}/files/X/a.nii.gz: bad") == "a.nii.gz: bad"
    workspace.close()
    assert not workspace.path.exists()

    code = ("import os, signal, sys; from brats_lib.app.upload import Workspace; "
            f"w = Workspace({str(tmp_path)!r}); (w.path / 'f').write_text('x'); print(w.path, flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    killed = Path(out.stdout.strip())
    assert killed.parent == tmp_path
    deadline = time.monotonic() + 20
    while killed.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not killed.exists()


# ---------------------------------------------------------------------------------------------------- runs


def write_untrained_run(run_dir: Path, data_dir: str, seed: int = 0) -> Path:
    """A run directory (config.json + best.pt) holding an untrained, seeded tiny U-Net."""
    import brats_lib.train as tr
    from brats_lib.models import build_model

    config = tr.TrainConfig(data_dir=data_dir, run_dir=str(run_dir), patch_size=16, epochs=3,
                            iterations_per_epoch=5, model={"name": "unet3d", "features_per_stage": [4, 8, 16]},
                            preprocess={"downsample": 1, "margin": 2})
    torch.manual_seed(seed)
    model = build_model(config.model_config())
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    tr.save_checkpoint(run_dir / "best.pt", {"config": config.to_dict(), "model": model.state_dict()})
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    synthetic = root / "synthetic_data"
    synthetic.mkdir()
    (synthetic / "dataset.json").write_text(json.dumps({"generator": "brats_lib.synthetic"}))
    real = root / "real_data"
    real.mkdir()
    write_untrained_run(root / "demo" / "unet3d", str(synthetic))
    write_untrained_run(root / "other" / "real", str(real), seed=1)
    (root / "demo" / "unet3d" / "metrics.json").write_text(json.dumps([{"epoch": 1}, {"epoch": 2}]))
    (root / "not_a_run").mkdir()
    return root


def test_runs_are_found_and_described(runs):
    assert [p.relative_to(runs).as_posix() for p in find_runs(runs)] == ["demo/unet3d", "other/real"]
    demo = describe_run(runs / "demo" / "unet3d", runs)
    assert demo.name == "demo/unet3d" and demo.synthetic is True
    assert demo.iterations == 10 and demo.epochs_done == 2  # 2 epochs done × 5 iterations
    text = demo.summary()
    assert "synthetic data" in text and "full resolution" in text and "10 iterations" in text and "16³" in text
    real = describe_run(runs / "other" / "real", runs)
    assert real.synthetic is False and real.iterations == 15 and "real data" in real.summary()


# ----------------------------------------------------------------------------------------------------- job


def test_segment_equals_predict_case_and_reports_progress_in_order(runs, tiny_case):
    from brats_lib.inference import predict_case

    loaded = load_case(discover_cases(tiny_case.parent)[0])
    run = runs / "demo" / "unet3d"
    seen = []
    result = segment(loaded, run, device="cpu", progress=lambda s, f: seen.append((s, f)))
    np.testing.assert_array_equal(result.label, predict_case(run, loaded, device="cpu", tta=False))
    assert result.label.dtype == np.uint8 and result.label.shape == loaded.geometry.shape
    stages = [s for s, _ in seen]
    assert stages[0] == "load" and stages[-1] == "done"
    assert [s for s in dict.fromkeys(stages)] == ["load", "preprocess", "sliding window", "post-process", "done"]
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    import dataclasses

    from brats_lib.inference import window_slices
    from brats_lib.preprocess import PreprocessConfig, preprocess_case

    shape = preprocess_case(dataclasses.replace(loaded, label=None),
                            PreprocessConfig(downsample=1, margin=2)).image.shape[1:]
    batches = -(-len(window_slices(shape, 16, 0.5)) // 2)  # 2 windows a forward pass
    assert sum(s == "sliding window" for s in stages) == batches > 1


def test_a_cancelled_job_stops_and_reports_it(runs, tiny_case):
    loaded = load_case(discover_cases(tiny_case.parent)[0])
    started, outcome = threading.Event(), []

    def progress(stage, fraction):
        if stage == "sliding window":
            started.set()
            time.sleep(0.2)

    job = SegmentationJob(loaded, runs / "demo" / "unet3d", "cpu", on_progress=progress,
                          on_done=lambda r: outcome.append("done"), on_cancel=lambda: outcome.append("cancelled"))
    job.start()
    assert started.wait(60)
    job.cancel()
    job.join(60)
    assert outcome == ["cancelled"] and job.result is None and job.cancelled
    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        segment(loaded, runs / "demo" / "unet3d", cancel=event)


# ------------------------------------------------------------------------------------------------- results


def test_region_volumes_count_voxels_times_the_voxel_volume():
    label = np.zeros((4, 5, 6), np.uint8)
    label[0, 0, :3] = 1   # 3 NETC
    label[1, :, :] = 2    # 30 SNFH
    label[2, 0, :2] = 3   # 2 ET
    label[3, 0, 0] = 4    # 1 RC
    table = results.region_volumes(label, (1.0, 1.0, 2.0))  # 2 mm³ voxels
    assert table.region.tolist() == ["NETC", "SNFH", "ET", "RC", "TC", "WT"]
    assert table.voxels.tolist() == [3, 30, 2, 1, 5, 35]
    np.testing.assert_allclose(table.ml, [0.006, 0.060, 0.004, 0.002, 0.010, 0.070])
    page = results.volumes_html(table)
    assert "<th>region</th><th>voxels</th><th>mL</th>" in page and page.count("<tr>") == 7
    assert ">WT</td><td style=\"text-align:right\">35</td><td style=\"text-align:right\">0.070</td>" in page
    csv = results.volumes_csv(table, "X").splitlines()
    assert csv[0] == "case_id,region,voxels,ml" and csv[6] == "X,WT,35,0.070000"


def test_the_downloaded_label_map_overlays_the_input(tiny_case, tmp_path):
    loaded = load_case(discover_cases(tiny_case.parent)[0])
    data = results.label_nifti_bytes(loaded.label, loaded.geometry, tmp_path)
    (tmp_path / "x.nii.gz").write_bytes(data)
    img = nib.load(tmp_path / "x.nii.gz")
    source = nib.load(loaded.case.image_paths["t1n"])
    assert img.get_data_dtype() == np.uint8 and img.shape == source.shape
    np.testing.assert_array_equal(img.affine, source.affine)
    np.testing.assert_array_equal(np.asarray(img.dataobj), loaded.label)
    assert list(tmp_path.iterdir()) == [tmp_path / "x.nii.gz"]  # the temporary copy is gone
    link = results.download_link_html("a b.nii.gz", b"\x00\x01", "application/gzip")
    assert 'download="a b.nii.gz"' in link and "base64,AAE=" in link


# ------------------------------------------------------------------------------------------------- preview


def test_preview_defaults_change_nothing_and_flips_mirror(tiny_case):
    loaded = load_case(discover_cases(tiny_case.parent)[0])
    image, label = preview.preview_window(loaded, size=20)
    assert image.shape == (1, 4, 20, 20, 20) and label.shape == (1, 20, 20, 20)
    assert (label > 0).sum() > 0  # centred on the tumour
    same, same_label = preview.apply_settings(image, label, preview.PreviewSettings())
    torch.testing.assert_close(same, image)
    assert torch.equal(same_label, label)
    flipped, flipped_label = preview.apply_settings(image, label, preview.PreviewSettings(flip_x=True))
    torch.testing.assert_close(flipped, torch.flip(image, dims=[2]))
    assert torch.equal(flipped_label, torch.flip(label, dims=[1]))
    brighter, _ = preview.apply_settings(image, label, preview.PreviewSettings(brightness=1.2))
    torch.testing.assert_close(brighter, image * 1.2)
    png = preview.preview_png(image, label, flipped, flipped_label)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------- page


def test_the_page_from_python_segments_reports_bad_uploads_and_warns_about_demo_models(runs, tiny_case, tmp_path):
    from brats_lib.app.widgets import SegmentApp

    app = SegmentApp(runs_root=runs, demo_data_dir=None, device="cpu", workspace_parent=tmp_path)
    try:
        assert app.run_select.value == ("demo/unet3d",) and "synthetic data" in app.run_info.value
        assert app.accept_files(as_uploads(images(tiny_case)))
        app._job.join(120)
        assert "done" in app.stage_label.value and app.error.value == ""
        loaded = load_case(discover_cases(tiny_case.parent)[0])
        expected = results.region_volumes(app.result.label, loaded.geometry.spacing)
        assert f"<td style=\"text-align:right\">{expected.voxels.iloc[-1]}</td>" in app.volumes.value
        assert "Demo model" in app.warning.value  # a synthetic-trained run on an uploaded scan
        app.run_select.value = ("other/real",)
        assert app.warning.value == ""

        assert not app.accept_files(as_uploads(images(tiny_case))[:2])
        assert "got 2 file(s)" in app.error.value and app.volumes.value == "" and app.run_button.disabled
        assert str(tmp_path) not in app.error.value
    finally:
        app.close()
    assert not list(tmp_path.glob("brats-app-*"))
