"""The app's speed: from the end of an upload to the segmentation on screen, against `brats predict`.

The app (notebooks/10_segment_app.ipynb) is served by Voilà and driven by headless Chromium: the four images of
one case are chosen in the upload's file chooser, and the page records (``performance.now()``) when the kernel
confirms that it has the files (the upload status ``upload N: …`` appears: the end of the upload) and when the
result is on screen (the volumes table and a slice image of the result browser). Everything in between is the
app's work: io's checks, loading the run (first upload only), preprocessing, sliding window, post-processing,
volumes, the download links and the slice browser's pre-rendered slices.

The peer is `brats predict --no-tta` (the app's default: no mirroring) on the same case and run, as a fresh
process each time (what a user of the command line waits for), in the same session.

    python benchmarks/bench_app.py --run runs/demo/unet3d --case data/synthetic/BraTS-GLI-00000-000 --repeats 3

Prints each time, min and median, and the ratio app / peer. Needs /usr/bin/chromium (``make chromium``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

_RECORDER = """n => new Promise(resolve => {
    const t = {};
    const check = () => {
        const now = performance.now();
        if (!t.uploaded && document.querySelector(`.brats-upload-status [data-upload="${n}"]`)) t.uploaded = now;
        const table = document.querySelector('.brats-volumes table');
        if (t.uploaded && !t.cleared && !table) t.cleared = now;  // the previous result is gone
        if (t.cleared && !t.volumes && table) t.volumes = now;
        const img = document.querySelector('.brats-results .brats-slice-browser img');
        if (t.volumes && !t.slices && img && img.naturalWidth > 0) t.slices = now;
        const err = document.querySelector('.brats-error');
        if (err && err.innerText.trim() && t.uploaded) { t.error = err.innerText; }
        if (t.slices || t.error) { observer.disconnect(); clearInterval(timer); resolve(t); }
    };
    const timer = setInterval(check, 20);  // an image's load changes no DOM node
    const observer = new MutationObserver(check);
    observer.observe(document.body, {childList: true, subtree: true, attributes: true, characterData: true});
    window.__bratsTimes = t;
})"""


def app_times(run: Path, case: Path, repeats: int, device: str, tmp: Path) -> list[dict]:
    import papermill
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests"))
    from test_app import CHROMIUM, CHROMIUM_ARGS, server  # the test's server and browser set-up

    notebook = tmp / "10_segment_app.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "10_segment_app.ipynb"), str(notebook),
                               parameters={"runs_root": str(run), "demo_data_dir": None, "device": device},
                               prepare_only=True, progress_bar=False)
    files = [str(p) for p in sorted(case.iterdir()) if p.name.endswith((".nii", ".nii.gz")) and "seg" not in p.name]
    command = [str(BIN / "voila"), str(notebook), "--no-browser", "--Voila.ip=127.0.0.1"]
    rows = []
    with server(command, "/voila/static/probe-that-starts-no-kernel", tmp) as base:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1200})
            page.set_default_timeout(600_000)
            page.goto(base + "/", wait_until="load")
            page.wait_for_selector(".brats-upload", state="visible")
            for i in range(1, repeats + 1):
                page.evaluate(f"() => {{ window.__bratsDone = ({_RECORDER})({i}); }}")
                with page.expect_file_chooser() as chooser:
                    page.locator(".brats-upload").click()
                clicked = page.evaluate("() => performance.now()")
                chooser.value.set_files(files)
                t = page.evaluate("() => window.__bratsDone")
                if "error" in t:
                    raise RuntimeError(f"the app reported: {t['error']}")
                rows.append({"transfer_s": (t["uploaded"] - clicked) / 1000,
                             "volumes_s": (t["volumes"] - t["uploaded"]) / 1000,
                             "on_screen_s": (t["slices"] - t["uploaded"]) / 1000})
                print(f"app #{i}: upload sent and received {rows[-1]['transfer_s']:.2f} s, then volumes after "
                      f"{rows[-1]['volumes_s']:.2f} s, segmentation on screen after {rows[-1]['on_screen_s']:.2f} s",
                      flush=True)
            browser.close()
    return rows


def kernel_times(run: Path, case: Path, repeats: int, device: str, tmp: Path) -> list[float]:
    """The page's work without the page: staging and io's checks, the segmentation job, the volumes table and
    the download (what the kernel does between receiving the files and sending the result), in one process
    with the run loaded once, as in a page's kernel. For machines without a browser (a GPU machine)."""
    import torch

    from brats_lib.app import results
    from brats_lib.app.job import segment
    from brats_lib.app.upload import UploadedFile, Workspace, stage_upload
    from brats_lib.inference import load_ensemble
    from brats_lib.io import load_case

    files = [UploadedFile(p.name, p.read_bytes()) for p in sorted(case.iterdir())
             if p.name.endswith((".nii", ".nii.gz")) and "seg" not in p.name]
    workspace = Workspace(tmp)
    ensemble = load_ensemble([run], device=device)
    times = []
    for i in range(1, repeats + 1):
        start = time.perf_counter()
        loaded = load_case(stage_upload(files, workspace.new_folder()))
        result = segment(loaded, ensemble, device=device)
        table = results.region_volumes(result.label, loaded.geometry.spacing)
        results.volumes_html(table)
        results.download_link_html("x.nii.gz", results.label_nifti_bytes(result.label, loaded.geometry,
                                                                          workspace.new_folder("result")), "x")
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in result.seconds.items())
        print(f"kernel path #{i}: {times[-1]:.2f} s ({stages})", flush=True)
    workspace.close()
    return times


def peer_times(run: Path, case: Path, repeats: int, device: str, tmp: Path) -> list[float]:
    data = tmp / "in"
    data.mkdir()
    (data / case.name).symlink_to(case.resolve())
    times = []
    for i in range(1, repeats + 1):
        out = tmp / f"out{i}"
        start = time.perf_counter()
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        subprocess.run([sys.executable, "-m", "brats_lib.cli", "predict", "--run", str(run), "--in", str(data),
                        "--out", str(out), "--device", device, "--no-tta"], check=True, capture_output=True,
                       env=dict(os.environ, PYTHONPATH=path))
        times.append(time.perf_counter() - start)
        print(f"brats predict #{i}: {times[-1]:.2f} s", flush=True)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="run directory (a demo run: runs/demo/unet3d)")
    parser.add_argument("--case", required=True, type=Path, help="case folder (182×218×182 for the goal)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--kernel-only", action="store_true",
                        help="no browser: time the kernel's path (see kernel_times) against the peer")
    args = parser.parse_args(argv)
    import nibabel as nib
    import torch

    first = next(p for p in sorted(args.case.iterdir()) if p.name.endswith((".nii", ".nii.gz")))
    shape = nib.load(first).shape
    print(f"case {args.case.name} {'×'.join(map(str, shape))}, run {args.run}, device {args.device}, "
          f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.kernel_only:
            kernel = kernel_times(args.run.resolve(), args.case.resolve(), args.repeats, args.device, Path(tmp))
        else:
            app = app_times(args.run.resolve(), args.case.resolve(), args.repeats, args.device, Path(tmp))
        peer = peer_times(args.run.resolve(), args.case.resolve(), args.repeats, args.device, Path(tmp))
    if args.kernel_only:
        print()
        print("| what | min (s) | median (s) |")
        print("| --- | --- | --- |")
        print(f"| app kernel path: files received → result ready | {min(kernel):.2f} | {statistics.median(kernel):.2f} |")
        print(f"| peer: brats predict --no-tta (fresh process) | {min(peer):.2f} | {statistics.median(peer):.2f} |")
        print(f"| ratio app / peer | {min(kernel) / min(peer):.2f} | "
              f"{statistics.median(kernel) / statistics.median(peer):.2f} |")
        return 0
    screen = [r["on_screen_s"] for r in app]
    print()
    print("| what | min (s) | median (s) |")
    print("| --- | --- | --- |")
    print(f"| app: end of upload → segmentation on screen | {min(screen):.2f} | {statistics.median(screen):.2f} |")
    print(f"| app: end of upload → volumes table | {min(r['volumes_s'] for r in app):.2f} | "
          f"{statistics.median(r['volumes_s'] for r in app):.2f} |")
    print(f"| peer: brats predict --no-tta (fresh process) | {min(peer):.2f} | {statistics.median(peer):.2f} |")
    print(f"| ratio app / peer | {min(screen) / min(peer):.2f} | {statistics.median(screen) / statistics.median(peer):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
