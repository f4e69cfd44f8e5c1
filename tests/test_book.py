"""The Jupyter Book: built from papermill-executed notebooks, offline, with its figures and a working widget.

One build per test session, in a temporary folder: ``00_dataset`` and ``01_eda`` executed with the demo
profile (fresh executed copies in ``book/executed`` from ``make notebooks`` with the demo profile are reused
instead of re-running them; ``BRATS_BOOK_REEXECUTE=1`` forces a run), the book sources copied beside them,
and ``jupyter-book build --warningiserror``. The EDA page is then opened in headless Chromium via
Playwright with every non-``file://`` request aborted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
BOOK_NOTEBOOKS = ("00_dataset.ipynb", "01_eda.ipynb")  # what this test needs executed
CDN = re.compile(r"cdn|unpkg|jsdelivr", re.IGNORECASE)

pytestmark = pytest.mark.book

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: install it with `make chromium` "
                                  "(apt-get install chromium) to test the book in a browser")


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_fresh(executed: Path, source: Path, parameters: dict, newer_than: float) -> bool:
    """An executed copy of ``source`` with exactly ``parameters`` (papermill metadata), newer than the code."""
    if not executed.is_file() or executed.stat().st_mtime < newer_than:
        return False
    meta = json.loads(executed.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
    return meta.get("parameters") == parameters and not meta.get("exception")


@pytest.fixture(scope="session")
def book_html(tmp_path_factory) -> Path:
    runner = _runner()
    profile = runner.load_profile("demo")
    src = tmp_path_factory.mktemp("book-src")
    executed = src / "book" / "executed"
    code = [*ROOT.glob("brats_lib/**/*.py"), ROOT / "notebooks" / "profiles" / "demo.yml"]
    todo = []
    for name in BOOK_NOTEBOOKS:
        source = ROOT / "notebooks" / name
        newest = max(p.stat().st_mtime for p in [source, *code])
        reuse = ROOT / "book" / "executed" / name
        if os.environ.get("BRATS_BOOK_REEXECUTE") != "1" and _is_fresh(
                reuse, source, runner.notebook_parameters(source, profile), newest):
            executed.mkdir(parents=True, exist_ok=True)
            shutil.copy2(reuse, executed / name)
        else:
            todo.append(name.removesuffix(".ipynb"))
    if todo:
        command = [sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "demo",
                   "--out", str(executed)] + [a for stem in todo for a in ("--only", stem)]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    if not (ROOT / "book" / "_static" / "vendor" / "embed-amd.js").is_file():
        result = subprocess.run([str(ROOT / "scripts" / "fetch_book_assets.sh")], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "book", src / "book", dirs_exist_ok=True,
                    ignore=lambda folder, names: ["executed"] if Path(folder) == ROOT / "book" else [])
    result = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(src), "--warningiserror", "--keep-going"],
        cwd=src, capture_output=True, text=True)
    assert result.returncode == 0, "book build failed:\n" + result.stdout[-8000:] + result.stderr[-3000:]
    html = src / "_build" / "html"
    assert (html / "index.html").is_file()
    return html


def test_book_pages_exist(book_html: Path):
    assert (book_html / "book" / "intro.html").is_file()
    for name in BOOK_NOTEBOOKS:
        assert (book_html / "book" / "executed" / name.replace(".ipynb", ".html")).is_file()
    eda = (book_html / "book" / "executed" / "01_eda.html").read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in eda  # the widget state is embedded
    assert "_static/vendor/require.js" in eda and "_static/vendor/embed-amd.js" in eda


def test_no_cdn_urls_in_built_html(book_html: Path):
    offenders = {}
    for page in book_html.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        # absolute URLs (base64 has no ":") and protocol-relative src/href values
        urls = re.findall(r"https?://[^\s\"'<>()]+", text)
        urls += re.findall(r"(?:src|href)\s*=\s*[\"'](//[^\"']+)", text)
        bad = sorted({url[:200] for url in urls if CDN.search(url)})
        if bad:
            offenders[str(page.relative_to(book_html))] = bad
    assert not offenders, f"CDN URLs in the built book: {offenders}"


@pytest.fixture(scope="session")
def eda_page(book_html: Path, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (make chromium)")
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    errors: list[str] = []

    def route(route):
        if route.request.url.startswith(("file://", "blob:", "data:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.route("**/*", route)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
        page.goto((book_html / "book" / "executed" / "01_eda.html").as_uri(), wait_until="load")
        page.wait_for_selector(".brats-slice-browser .widget-slider", timeout=60_000)
        page.locator(".brats-slice-browser").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path_factory.mktemp("screens") / "01_eda.png"), full_page=False)
        yield page, blocked, errors
        browser.close()


@needs_chromium
def test_eda_page_is_offline(eda_page):
    _, blocked, errors = eda_page
    assert blocked == [], f"the page tried the network: {blocked}"
    assert errors == [], f"page errors or failed requests: {errors}"


@needs_chromium
def test_eda_figures_are_shown(eda_page):
    page, _, _ = eda_page
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    figures = page.evaluate(
        """() => Array.from(document.querySelectorAll('.cell_output img'))
                 .filter(i => !i.closest('.brats-slice-browser'))
                 .map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])""")
    assert len(figures) >= 3, figures  # label volumes, intensities, montage
    assert all(w > 0 and h > 0 for _, w, h in figures), figures


def _shown_slice(page) -> tuple[str, str]:
    """(slider readout, hash of the pixels of the browser image on screen)."""
    readout = page.locator(".brats-slice-browser .widget-slider .widget-readout").first.inner_text()
    digest = page.evaluate(
        """() => {
             const img = Array.from(document.querySelectorAll('.brats-slice-browser img'))
                              .find(i => i.offsetParent !== null && i.naturalWidth > 0);
             if (!img) return null;
             const c = document.createElement('canvas');
             c.width = img.naturalWidth; c.height = img.naturalHeight;
             const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
             return Array.from(ctx.getImageData(0, 0, c.width, c.height).data).join(',');
           }""")
    assert digest, "no visible slice image in the browser"
    return readout, hashlib.sha1(digest.encode()).hexdigest()


@needs_chromium
def test_slice_browser_renders_its_controls(eda_page):
    """The book is executed with ``for_book`` set: controls that need a kernel are replaced by a static panel
    saying so, and the slice slider (jslinked to pre-rendered images) is the one live control."""
    page, _, _ = eda_page
    browser = page.locator(".brats-slice-browser")
    assert browser.is_visible()
    assert page.get_by_text("Loading widget").count() == 0
    assert browser.locator(".brats-static-panel").count() == 1
    assert browser.locator(".widget-dropdown").count() == 0            # case, modality: static panel instead
    assert browser.locator(".widget-toggle-buttons button").count() == 0
    assert browser.locator(".widget-slider").count() == 1              # slice only
    text = browser.inner_text()
    for word in ("Static view", "case", "slice", "NETC", "SNFH", "ET", "RC"):
        assert word in text


@needs_chromium
def test_slice_slider_changes_the_slice_offline(eda_page):
    page, _, _ = eda_page
    readout, pixels = _shown_slice(page)
    handle = page.locator(".brats-slice-browser .widget-slider").first.locator(".noUi-handle")
    handle.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    new_readout, new_pixels = _shown_slice(page)
    assert int(new_readout) > int(readout), (readout, new_readout)
    assert new_pixels != pixels, "the displayed slice did not change"
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    page.wait_for_timeout(300)
    assert _shown_slice(page) == (readout, pixels)
