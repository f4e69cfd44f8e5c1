"""The upload-and-segment app in a real browser: Voilà serving notebooks/10_segment_app.ipynb, driven by
headless Debian Chromium through Playwright; and JupyterLab itself running notebooks/01_eda.ipynb.

One Voilà server for the module (started on a free port with a private TMPDIR, stopped at the end), the app
notebook prepared by papermill with a tiny run trained here (``runs_root``) and a 1 MB upload limit. Reference
predictions come from ``brats predict`` (``--no-tta``, the app's default) on the same case and run; volumes
are counted by hand from them.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import TINY_AFFINE, write_tiny_case

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
UPLOAD_LIMIT_MB = 1.0
TIMEOUT_MS = 120_000
REGIONS = {"NETC": (1,), "SNFH": (2,), "ET": (3,), "RC": (4,), "TC": (1, 3), "WT": (1, 2, 3)}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: `make chromium` installs it"),
]


# ------------------------------------------------------------------------------------------------ set-up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # the server answers (a 404 for a path that starts nothing)
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def server(command: list[str], url_path: str, folder: Path, env_extra: dict | None = None):
    """Start a Jupyter server process on a free port; yield its base URL; stop it (SIGTERM, then SIGKILL)."""
    port = free_port()
    log = folder / f"server-{port}.log"
    # JUPYTER_PATH: the app's Voilà template (share/jupyter/voila/templates/brats, selected by voila.json)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "JUPYTER_PATH": str(ROOT / "share" / "jupyter"),
           **(env_extra or {})}
    with open(log, "w") as out:
        proc = subprocess.Popen([*command, f"--port={port}"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + url_path, proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def tiny_cases(tmp_path_factory) -> Path:
    """Tiny cases: 0–2 (``train/``) train the run; 3 and 4 (``cases/``) are uploaded."""
    root = tmp_path_factory.mktemp("app")
    for i in range(3):
        write_tiny_case(root / "train", i)
    for i in (3, 4):
        write_tiny_case(root / "cases", i)
    return root


@pytest.fixture(scope="module")
def tiny(tiny_cases):
    """The tiny cases and a run trained on 0–2 (``runs/tiny``)."""
    import brats_lib.train as tr

    root = tiny_cases
    config = tr.TrainConfig(data_dir=str(root / "train"), cache_dir=str(root / "cache"),
                            run_dir=str(root / "runs" / "tiny"),
                            model={"name": "unet3d", "features_per_stage": [4, 8, 16]}, patch_size=16, batch_size=2,
                            epochs=1, iterations_per_epoch=2, val_patches=2, workers=0,
                            preprocess={"downsample": 1, "margin": 2}, device="cpu")
    tr.train(config, progress=False)
    return root


@pytest.fixture(scope="module")
def reference(tiny):
    """``brats predict --no-tta`` of every tiny case (and of the 2018–2021 copy of case 3)."""
    from brats_lib import cli

    legacy_root = tiny / "legacy"
    make_legacy_case(tiny / "cases" / "BraTS-GLI-00003-000", legacy_root / "BraTS2021_00003")
    out = tiny / "predicted"
    for data in (tiny / "cases", legacy_root):
        assert cli.main(["predict", "--run", str(tiny / "runs" / "tiny"), "--in", str(data), "--out", str(out),
                         "--device", "cpu", "--no-tta"]) == 0
    return out


@pytest.fixture(scope="module")
def voila(tiny, tmp_path_factory):
    """Voilà serving a papermill-prepared copy of the app notebook; yields (base URL, its TMPDIR)."""
    import papermill

    folder = tmp_path_factory.mktemp("voila")
    notebook = folder / "10_segment_app.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "10_segment_app.ipynb"), str(notebook),
                               parameters={"runs_root": str(tiny / "runs"), "demo_data_dir": str(tiny / "cases"),
                                           "max_upload_mb": UPLOAD_LIMIT_MB, "device": "cpu"},
                               prepare_only=True, progress_bar=False)
    tmpdir = folder / "tmp"
    tmpdir.mkdir()
    command = [str(BIN / "voila"), str(notebook), "--no-browser", "--Voila.ip=127.0.0.1"]  # + ./voila.json
    with server(command, "/voila/static/probe-that-starts-no-kernel", folder, {"TMPDIR": str(tmpdir)}) as base:
        yield base, tmpdir


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_app(browser, base: str):
    context = browser.new_context(viewport={"width": 1280, "height": 1200}, accept_downloads=True)
    outside: list[str] = []  # requests that would leave the machine (the page must work offline)
    context.on("request", lambda request: outside.append(request.url)
               if request.url.startswith(("http:", "https:", "ws:", "wss:"))
               and not request.url.split("//", 1)[1].startswith(("127.0.0.1", "localhost")) else None)
    page = context.new_page()
    page.outside_requests = outside
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base + "/", wait_until="load")
    page.wait_for_selector(".brats-upload", state="visible")
    return page


@pytest.fixture(scope="module")
def app_page(browser, voila):
    page = open_app(browser, voila[0])
    yield page
    page.context.close()


# ------------------------------------------------------------------------------------------------ helpers


def case_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".nii.gz"))


def images_only(folder: Path) -> list[Path]:
    return [p for p in case_files(folder) if not p.name.endswith("-seg.nii.gz")]


def make_legacy_case(src: Path, dest: Path) -> Path:
    """The 2018–2021 layout of a 2024-layout tiny case: ``_t1/_t1ce/_t2/_flair/_seg``, labels 1/2/4."""
    dest.mkdir(parents=True, exist_ok=True)
    names = {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair"}
    for tag, legacy in names.items():
        shutil.copy(src / f"{src.name}-{tag}.nii.gz", dest / f"{dest.name}_{legacy}.nii.gz")
    seg = np.asarray(nib.load(src / f"{src.name}-seg.nii.gz").dataobj)
    seg = np.where(seg == 4, 0, np.where(seg == 3, 4, seg)).astype(np.uint8)  # no RC in 2021; ET 3 → 4
    nib.save(nib.Nifti1Image(seg, TINY_AFFINE), dest / f"{dest.name}_seg.nii.gz")
    return dest


def upload_count(page) -> int:
    status = page.locator(".brats-upload-status [data-upload]")
    return int(status.get_attribute("data-upload")) if status.count() else 0


def upload(page, paths) -> None:
    """Choose ``paths`` in the upload's file chooser and wait until the kernel has checked them."""
    n = upload_count(page) + 1
    with page.expect_file_chooser() as chooser:
        page.locator(".brats-upload").click()
    chooser.value.set_files([str(p) for p in paths])
    page.wait_for_function(
        f"""() => {{ const s = document.querySelector('.brats-upload-status [data-upload="{n}"]');
                    return s && !s.innerText.includes('checking') }}""", timeout=TIMEOUT_MS)


def wait_outcome(page) -> str:
    """Wait for the volumes table or an error; returns ``"result"`` or ``"error"``."""
    page.wait_for_function(
        """() => document.querySelector('.brats-volumes table') ||
                 (document.querySelector('.brats-error') || {}).innerText?.trim()""", timeout=TIMEOUT_MS)
    return "result" if page.locator(".brats-volumes table").count() else "error"


def error_text(page) -> str:
    return page.locator(".brats-error").inner_text().strip()


def page_volumes(page) -> dict[str, tuple[int, float]]:
    table = page.locator(".brats-volumes table")
    header = [c.strip() for c in table.locator("thead th").all_inner_texts()]
    assert header[0] == "region" and "mL" in header, header
    volumes = {}
    for row in table.locator("tbody tr").all():
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        volumes[cells[0]] = (int(cells[header.index("voxels")]), float(cells[header.index("mL")]))
    return volumes


def hand_volumes(prediction: Path) -> dict[str, tuple[int, float]]:
    img = nib.load(prediction)
    label = np.asarray(img.dataobj)
    voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000
    counts = {r: int(np.isin(label, labels).sum()) for r, labels in REGIONS.items()}
    return {r: (n, round(n * voxel_ml, 3)) for r, n in counts.items()}


def download(page, link_text: str, folder: Path) -> Path:
    with page.expect_download() as info:
        page.locator(".brats-download a", has_text=link_text).click()
    target = folder / info.value.suggested_filename
    info.value.save_as(target)
    return target


def good_upload(page, tiny: Path, reference: Path, index: int = 3) -> None:
    case_id = f"BraTS-GLI-{index:05d}-000"
    upload(page, images_only(tiny / "cases" / case_id))
    assert wait_outcome(page) == "result", error_text(page)
    assert error_text(page) == ""
    assert page_volumes(page) == hand_volumes(reference / f"{case_id}.nii.gz")


def shown_png_hash(page, selector: str) -> str:
    src = page.locator(selector).evaluate("img => img.src")
    return hashlib.sha1(src.encode()).hexdigest()


# ------------------------------------------------------------------------------------------- the results


def test_upload_four_files_volumes_and_downloads_equal_brats_predict(app_page, tiny, reference, tmp_path):
    page = app_page
    assert page.outside_requests == [], f"the app page asked the internet for {page.outside_requests}"
    case_id = "BraTS-GLI-00004-000"
    upload(page, images_only(tiny / "cases" / case_id))
    assert wait_outcome(page) == "result", error_text(page)
    expected = reference / f"{case_id}.nii.gz"
    assert page_volumes(page) == hand_volumes(expected)
    assert case_id in page.locator(".brats-volumes").inner_text()

    saved = download(page, ".nii.gz", tmp_path)
    assert saved.name == f"{case_id}.nii.gz"
    got, want = nib.load(saved), nib.load(expected)
    source = nib.load(tiny / "cases" / case_id / f"{case_id}-t1n.nii.gz")
    assert got.get_data_dtype() == np.uint8 and got.shape == source.shape
    np.testing.assert_array_equal(got.affine, source.affine)
    np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(want.dataobj))

    csv = download(page, "CSV", tmp_path).read_text().splitlines()
    assert csv[0] == "case_id,region,voxels,ml"
    rows = {r.split(",")[1]: r.split(",") for r in csv[1:]}
    assert {r: int(v[2]) for r, v in rows.items()} == {r: v[0] for r, v in hand_volumes(expected).items()}
    # the same numbers as `brats volumes` on the `brats predict` output
    from brats_lib.cli import main as cli_main

    flat = tmp_path / "predicted"
    flat.mkdir()
    shutil.copy2(expected, flat / expected.name)
    assert cli_main(["volumes", "--seg", str(flat), "--out", str(tmp_path / "volumes.csv")]) == 0
    cli_rows = {r.split(",")[1]: r.split(",") for r in (tmp_path / "volumes.csv").read_text().splitlines()[1:]}
    header = (tmp_path / "volumes.csv").read_text().splitlines()[0].split(",")
    for region, row in rows.items():
        cli = dict(zip(header, cli_rows[region]))
        assert int(cli["voxels"]) == int(row[2]) and float(cli["volume_ml"]) == pytest.approx(float(row[3]))

    progress = page.locator(".brats-progress")
    assert progress.count() == 1 and "done" in page.locator(".brats-stage").inner_text()
    assert page.locator(".brats-scores table").count() == 0  # no ground truth, no scores
    assert page.locator(".brats-slice-browser").count() == 1

    # the 3D view (ipyniivue, WebGL; headless Chromium renders it with SwiftShader): three planes and the
    # 3D rendering in a 2 × 2 grid, each quadrant drawn (not the black background)
    page.get_by_role("tab", name="3D view").click()
    canvas = page.locator("canvas").first
    canvas.wait_for(state="visible")
    page.wait_for_timeout(5000)
    from PIL import Image

    shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).astype(int)
    h, w = shot.shape[0] // 2, shot.shape[1] // 2
    drawn = [(shot[i * h:(i + 1) * h, j * w:(j + 1) * w].sum(axis=2) > 60).mean() for i in (0, 1) for j in (0, 1)]
    assert min(drawn) > 0.02, f"share of drawn pixels per quadrant of the 3D view: {drawn}"
    page.get_by_role("tab", name="slices").click()


def test_zip_in_2021_layout_with_ground_truth_shows_the_lesion_wise_scores(app_page, tiny, reference, tmp_path):
    from brats_lib.metrics import lesion_wise_results

    page = app_page
    case = tiny / "legacy" / "BraTS2021_00003"
    archive = tmp_path / "BraTS2021_00003.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in case_files(case):
            zf.write(path, f"{case.name}/{path.name}")
    upload(page, [archive])
    assert wait_outcome(page) == "result", error_text(page)
    expected = reference / "BraTS2021_00003.nii.gz"
    assert page_volumes(page) == hand_volumes(expected)

    page.wait_for_selector(".brats-scores table")
    pred = np.asarray(nib.load(expected).dataobj)
    from brats_lib.io import load_label

    gt = load_label(case / f"{case.name}_seg.nii.gz", "legacy")
    official, _ = lesion_wise_results(pred, gt)
    rows = page.locator(".brats-scores tbody tr").all()
    shown = {r.locator("td").first.inner_text().strip(): r.locator("td").nth(1).inner_text().strip() for r in rows}
    assert set(shown) == {"WT", "TC", "NETC", "SNFH", "ET", "RC"}
    for row in official.itertuples():
        assert float(shown[row.Labels]) == pytest.approx(row.LesionWise_Score_Dice, abs=5e-4)
    # the browser can show the ground truth instead of the prediction
    assert page.locator(".brats-results .widget-toggle-buttons button", has_text="ground truth").count() == 1


def test_augmentation_tab_previews_the_case_and_follows_the_sliders(app_page):
    page = app_page
    page.locator(".lm-TabBar-tab", has_text="Augmentation").click()
    page.wait_for_selector(".brats-augmentation img[src^='blob:'], .brats-augmentation img[src^='data:']")
    page.wait_for_function("() => document.querySelector('.brats-aug-status').innerText.includes('augmented')")
    before = shown_png_hash(page, ".brats-augmentation img")
    handle = page.locator(".brats-augmentation .widget-slider").first.locator(".noUi-handle")
    handle.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    deadline = time.monotonic() + 60
    while shown_png_hash(page, ".brats-augmentation img") == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert shown_png_hash(page, ".brats-augmentation img") != before
    page.locator(".lm-TabBar-tab", has_text="Segment").click()


# --------------------------------------------------------------------------------------------- bad uploads


def _write(folder: Path, name: str, data: np.ndarray, affine=TINY_AFFINE) -> Path:
    path = folder / name
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _bad_upload(kind: str, tiny: Path, folder: Path) -> list[Path]:
    """Files for each kind of bad upload (from tiny case 3)."""
    src = tiny / "cases" / "BraTS-GLI-00003-000"
    cid = src.name
    folder.mkdir(parents=True, exist_ok=True)
    images = {m: src / f"{cid}-{m}.nii.gz" for m in ("t1n", "t1c", "t2w", "t2f")}
    seg = src / f"{cid}-seg.nii.gz"

    def copy(paths):
        out = []
        for p in paths:
            shutil.copy(p, folder / p.name)
            out.append(folder / p.name)
        return out

    def volume(m):
        return np.asarray(nib.load(images[m]).dataobj)

    if kind == "wrong_number_of_files":
        return copy([images["t1n"], images["t1c"], images["t2w"]])
    if kind == "missing_modality":
        return copy([images["t1n"], images["t1c"], images["t2w"], seg])
    if kind == "modality_twice":
        twice = folder / f"{cid}-t1n.nii"
        nib.save(nib.load(images["t1n"]), twice)
        return copy([images["t1n"], images["t1c"], images["t2w"]]) + [twice]
    if kind == "not_nifti":
        (folder / "notes.txt").write_text("not an image")
        return copy([images["t1n"], images["t1c"], images["t2w"]]) + [folder / "notes.txt"]
    if kind == "corrupt":
        (folder / f"{cid}-t2f.nii.gz").write_bytes(b"\x00garbage" * 100)
        return copy([images["t1n"], images["t1c"], images["t2w"]]) + [folder / f"{cid}-t2f.nii.gz"]
    if kind == "truncated":
        data = gzip.compress(nib.Nifti1Image(volume("t2f"), TINY_AFFINE).to_bytes())
        (folder / f"{cid}-t2f.nii.gz").write_bytes(data[: len(data) // 2])
        return copy([images["t1n"], images["t1c"], images["t2w"]]) + [folder / f"{cid}-t2f.nii.gz"]
    if kind == "four_d":
        v = volume("t1c")
        return copy([images["t1n"], images["t2w"], images["t2f"]]) + [
            _write(folder, f"{cid}-t1c.nii.gz", np.stack([v, v], axis=-1))]
    if kind == "shape_mismatch":
        return copy([images["t1n"], images["t1c"], images["t2w"]]) + [
            _write(folder, f"{cid}-t2f.nii.gz", volume("t2f")[:, :, :-2])]
    if kind == "affine_mismatch":
        shifted = TINY_AFFINE.copy()
        shifted[:3, 3] = 5.0
        return copy([images["t1n"], images["t1c"], images["t2w"]]) + [
            _write(folder, f"{cid}-t2f.nii.gz", volume("t2f"), shifted)]
    if kind == "ground_truth_on_another_grid":
        label = np.asarray(nib.load(seg).dataobj)
        return copy(images.values()) + [_write(folder, f"{cid}-seg.nii.gz", label[:, :, :-4])]
    if kind == "ground_truth_unknown_labels":
        label = np.asarray(nib.load(seg).dataobj).copy()
        label[0, 0, 0] = 7
        return copy(images.values()) + [_write(folder, f"{cid}-seg.nii.gz", label)]
    if kind == "over_the_size_limit":
        big = folder / f"{cid}-t1n.nii.gz"
        big.write_bytes(np.random.default_rng(0).bytes(int(UPLOAD_LIMIT_MB * 1e6) + 1000))
        return copy([images["t1c"], images["t2w"], images["t2f"]]) + [big]
    if kind == "empty_brain":
        zero = np.zeros(volume("t1n").shape, np.float32)
        return [_write(folder, f"{cid}-{m}.nii.gz", zero) for m in images]
    archive = folder / "case.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for m, p in images.items():
            zf.write(p, f"{cid}/{p.name}")
        if kind == "zip_path_traversal":
            zf.writestr("../evil.nii.gz", b"x")
        elif kind == "zip_nested":
            inner = io.BytesIO()
            with zipfile.ZipFile(inner, "w") as z2:
                z2.writestr("a.txt", "a")
            zf.writestr(f"{cid}/more.zip", inner.getvalue())
        elif kind == "zip_too_large_unpacked":
            zf.writestr(f"{cid}/padding.bin", b"\0" * int(2 * UPLOAD_LIMIT_MB * 1e6))
        else:
            raise ValueError(kind)
    return [archive]


BAD_UPLOADS = {  # kind → words the message must contain
    "wrong_number_of_files": "got 3 file(s)",
    "missing_modality": "missing modality",
    "modality_twice": "duplicated 't1n'",
    "not_nifti": "notes.txt: not a NIfTI file",
    "corrupt": "-t2f.nii.gz: cannot be read as NIfTI",
    "truncated": "-t2f.nii.gz: corrupt or truncated",
    "four_d": "-t1c.nii.gz: expected a 3D volume",
    "shape_mismatch": "-t2f.nii.gz: shape",
    "affine_mismatch": "-t2f.nii.gz: affine differs",
    "ground_truth_on_another_grid": "-seg.nii.gz: label shape",
    "ground_truth_unknown_labels": "-seg.nii.gz",
    "zip_path_traversal": "unsafe path '../evil.nii.gz'",
    "zip_nested": "nested archive",
    "zip_too_large_unpacked": "over the limit of 1 MB",
    "over_the_size_limit": "over the limit of 1 MB",
    "empty_brain": "empty brain mask",
}


@pytest.mark.parametrize("kind", list(BAD_UPLOADS))
def test_a_bad_upload_is_reported_and_the_next_good_one_works(app_page, tiny, reference, tmp_path, kind):
    page = app_page
    upload(page, _bad_upload(kind, tiny, tmp_path / kind))
    assert wait_outcome(page) == "error"
    message = error_text(page)
    assert BAD_UPLOADS[kind] in message, message
    assert "internal error" not in message and "/tmp" not in message  # a user error, naming the upload only
    assert page.locator(".brats-volumes table").count() == 0
    good_upload(page, tiny, reference)


def test_files_with_free_names_ask_for_their_modalities(app_page, tiny, reference, tmp_path):
    page = app_page
    src = tiny / "cases" / "BraTS-GLI-00003-000"
    names = {"t1n": "scan_a.nii.gz", "t1c": "scan_b.nii.gz", "t2w": "scan_c.nii.gz", "t2f": "scan_d.nii.gz"}
    for m, name in names.items():
        shutil.copy(src / f"{src.name}-{m}.nii.gz", tmp_path / name)
    upload(page, [tmp_path / n for n in names.values()])
    choice = page.locator(".brats-modality-choice")
    choice.locator("select").first.wait_for()
    for m, name in names.items():
        choice.locator(".widget-dropdown", has_text=name).locator("select").select_option(m)
    choice.locator("button", has_text="Use these modalities").click()
    assert wait_outcome(page) == "result", error_text(page)
    assert page_volumes(page) == hand_volumes(reference / f"{src.name}.nii.gz")


# ------------------------------------------------------------------------------------------------ sessions


def workspaces(tmpdir: Path) -> set[Path]:
    return set(tmpdir.glob("brats-app-*"))


def test_two_pages_at_once_see_only_their_own_case(browser, voila, tiny, reference):
    base, tmpdir = voila
    before = workspaces(tmpdir)
    pages = [open_app(browser, base) for _ in range(2)]
    case_ids = ["BraTS-GLI-00003-000", "BraTS-GLI-00004-000"]
    for page, case_id in zip(pages, case_ids):
        upload(page, images_only(tiny / "cases" / case_id))
    for page, case_id in zip(pages, case_ids):
        assert wait_outcome(page) == "result", error_text(page)
        assert page_volumes(page) == hand_volumes(reference / f"{case_id}.nii.gz")
        text = page.locator(".brats-volumes").inner_text()
        assert case_id in text
        assert [c for c in case_ids if c != case_id][0] not in text
    new = workspaces(tmpdir) - before
    assert len(new) == 2  # one private folder per page's kernel
    for folder in new:
        assert folder.stat().st_mode & 0o077 == 0  # private to the user running the server
    for page in pages:
        page.close(run_before_unload=True)
        page.context.close()
    deadline = time.monotonic() + 120
    while workspaces(tmpdir) & new and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not workspaces(tmpdir) & new, "the uploads were not removed when the pages' kernels ended"


# ------------------------------------------------------------------------------------------------ JupyterLab


def test_jupyterlab_runs_the_eda_notebook_and_its_slider_changes_the_image(browser, tiny_cases, tmp_path):
    """JupyterLab, the project's first way of use: open 01_eda, run all cells, move the slice slider."""
    import papermill

    lab_root = tmp_path / "lab"
    lab_root.mkdir()
    papermill.execute_notebook(str(ROOT / "notebooks" / "01_eda.ipynb"), str(lab_root / "01_eda.ipynb"),
                               parameters={"data_dir": str(tiny_cases / "cases"), "max_cases": 2, "n_voxels": 50,
                                           "browser_slices": 8},
                               prepare_only=True, progress_bar=False)
    env = {name: str(tmp_path / name.lower()) for name in
           ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
            "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR")}
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    command = [str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.token=",
               "--ServerApp.password=", f"--ServerApp.root_dir={lab_root}", "--LabApp.news_url=",
               "--ServerApp.disable_check_xsrf=True", "--ServerApp.allow_root=True"]
    with server(command, "/lab", tmp_path, env) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{base}/lab/tree/01_eda.ipynb", wait_until="load")
        page.wait_for_selector(".jp-Notebook .jp-Cell", state="visible")
        # the kernel is connected and idle before Run All (under load it can take minutes to start; with "No
        # Kernel" the execution indicator already reads idle, and Run All then runs nothing)
        page.get_by_text(re.compile(r"^Python 3 \(ipykernel\) \| Idle$")).first.wait_for(timeout=300_000)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        browser_widget = page.locator(".brats-slice-browser")
        browser_widget.wait_for(state="attached", timeout=600_000)
        browser_widget.scroll_into_view_if_needed()
        browser_widget.locator(".widget-slider").first.wait_for(state="visible")

        def shown() -> tuple[str, str]:
            readout = browser_widget.locator(".widget-slider .widget-readout").first.inner_text()
            src = browser_widget.evaluate(
                """b => { const img = Array.from(b.querySelectorAll('img'))
                                        .find(i => i.offsetParent !== null && i.naturalWidth > 0);
                          return img ? img.src : null }""")
            assert src, "no visible slice image"
            return readout, src

        readout, src = shown()
        handle = browser_widget.locator(".widget-slider").first.locator(".noUi-handle")
        handle.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        deadline = time.monotonic() + 30
        while shown()[1] == src and time.monotonic() < deadline:
            time.sleep(0.3)
        new_readout, new_src = shown()
        assert new_readout != readout and new_src != src
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
        assert not tracebacks, tracebacks
        page.close()
