"""The Jupyter Book: built from papermill-executed notebooks, offline, read page by page in a browser.

One build per test session, in a temporary folder, of EVERY numbered chapter, from the notebooks the session
executed once (``executed_notebooks`` in ``conftest.py``, see ``tests/executed.py`` for reuse and
``BRATS_BOOK_ONLY``/``BRATS_BOOK_REUSE``/``BRATS_BOOK_REEXECUTE``). The book sources are copied beside them
and built with ``jupyter-book build --warningiserror``. Every page is then opened in headless Chromium via Playwright at 1280 px with every non-``file:`` request aborted, and checked as a reader
would see it: offline, every image loaded, nothing wider than the content column (unless it is a table marked
scrollable, class ``brats-scroll``), no stderr, traceback or warning output, no injected parameters cell, and
no widget control that does nothing.
"""

from __future__ import annotations

import hashlib
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
from executed import BOOK_NOTEBOOKS  # noqa: E402  (tests/ is on sys.path: pytest's rootdir-relative import)
CDN = re.compile(r"cdn|unpkg|jsdelivr", re.IGNORECASE)
SCROLL_OK = "brats-scroll"             # class marking a table (or its wrapper) allowed to scroll sideways

pytestmark = pytest.mark.book

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: install it with `make chromium` "
                                  "(apt-get install chromium) to test the book in a browser")


@pytest.fixture(scope="session")
def book_html(executed_notebooks, tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("book-src")
    shutil.copytree(executed_notebooks, src / "book" / "executed")
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
def browser(book_html: Path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def eda_page(browser, book_html: Path, tmp_path_factory):
    blocked: list[str] = []
    errors: list[str] = []

    def route(route):
        if route.request.url.startswith(("file://", "blob:", "data:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(120_000)
    page.route("**/*", route)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    page.goto((book_html / "book" / "executed" / "01_eda.html").as_uri(), wait_until="load")
    page.wait_for_selector(".brats-slice-browser .widget-slider", timeout=60_000)
    page.locator(".brats-slice-browser").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path_factory.mktemp("screens") / "01_eda.png"), full_page=False)
    yield page, blocked, errors
    page.close()


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
    """The book is executed with ``book=True`` (scripts/run_notebooks.py): controls that need a kernel are replaced by a static panel
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


# ------------------------------------------------------------------------- every page, as a reader sees it

PAGES = ("book/intro",) + tuple(f"book/executed/{name.removesuffix('.ipynb')}" for name in BOOK_NOTEBOOKS)
CHAPTERS = PAGES[1:]
NOISE = re.compile(r"Traceback \(most recent call last\)|\b\w*Warning\b|\bWARNING\b|it/s\]|\d+%\|")


def test_executed_notebooks_have_no_stderr_traceback_or_warning(book_html: Path):
    executed = book_html.parents[1] / "book" / "executed"
    noise = {}
    for path in sorted(executed.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for index, cell in enumerate(nb["cells"]):
            for output in cell.get("outputs", []):
                kind = output["output_type"]
                if kind == "error" or (kind == "stream" and output.get("name") == "stderr"):
                    noise.setdefault(path.name, []).append((index, kind, "".join(output.get("text", ""))[:300]
                                                            or output.get("evalue", "")))
                    continue
                data = output.get("data", {})
                text = "".join(output.get("text", "")) if kind == "stream" else "".join(data.get("text/plain", ""))
                if NOISE.search(text):
                    noise.setdefault(path.name, []).append((index, "warning or progress text", text[:300]))
        if "ProgressModel" in json.dumps(nb.get("metadata", {}).get("widgets", {})):
            noise.setdefault(path.name, []).append((None, "progress widget (tqdm.notebook) in the widget state", ""))
    assert not noise, f"stderr, tracebacks, warnings or progress in executed notebooks: {noise}"


class OpenPage:
    """A built page loaded in Chromium, widgets rendered, with the requests it tried and its errors."""

    def __init__(self, browser, html: Path, name: str, screenshots: Path):
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 1000})
        self.page.set_default_timeout(120_000)  # a loaded 2-core machine loads widget pages slowly
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("requestfailed", lambda request: self.errors.append(f"failed: {request.url}"))
        self.page.goto((html / f"{name}.html").as_uri(), wait_until="load")
        views = self.page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        if views:
            self.page.wait_for_function(
                "n => document.querySelectorAll('.cell_output .jupyter-widgets').length >= n", arg=views,
                timeout=60_000)
            self.page.wait_for_function("() => !document.body.innerText.includes('Loading widget')",
                                        timeout=60_000)
        self.page.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=60_000)
        self.page.screenshot(path=str(screenshots / (name.replace("/", "_") + ".png")), full_page=True)

    def _route(self, route):
        if route.request.url.startswith(("file://", "blob:", "data:")):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()


@pytest.fixture(scope="session")
def pages(browser, book_html: Path, tmp_path_factory):
    screenshots = tmp_path_factory.mktemp("screens")
    opened: dict[str, OpenPage] = {}

    def get(name: str) -> OpenPage:
        if name not in opened:
            opened[name] = OpenPage(browser, book_html, name, screenshots)
        return opened[name]

    yield get
    for page in opened.values():
        page.page.close()


@needs_chromium
@pytest.mark.parametrize("name", PAGES)
def test_page_is_offline_and_every_image_loads(pages, name):
    page = pages(name)
    assert page.blocked == [], f"{name} tried the network: {page.blocked}"
    assert page.errors == [], f"{name}: page errors or failed requests: {page.errors}"
    broken = page.page.evaluate(
        "() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => (i.getAttribute('src') || '').slice(0, 80))")
    assert broken == [], f"{name}: images that did not load: {broken}"


_OVERFLOW_JS = """ok => {
  const column = document.querySelector('article.bd-article') || document.querySelector('main');
  const right = column.getBoundingClientRect().right;
  const describe = el => el.tagName.toLowerCase() + (typeof el.className === 'string' && el.className.trim()
      ? '.' + el.className.trim().split(/\\s+/).slice(0, 3).join('.') : '')
      + ' "' + (el.innerText || '').trim().slice(0, 50).replace(/\\s+/g, ' ') + '"';
  const bad = [];
  const seen = new Set();
  for (const el of column.querySelectorAll('*')) {
    if (el.closest('.' + ok)) continue;
    if (Array.from(seen).some(s => s.contains(el))) continue;      // reported with an ancestor
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || el.getClientRects().length === 0) continue;
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
      bad.push(`${describe(el)} scrolls sideways (${el.scrollWidth} px of content in ${el.clientWidth} px)`);
      seen.add(el);
      continue;
    }
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > right + 1) {
      bad.push(`${describe(el)} sticks out of the column by ${Math.round(box.right - right)} px`);
      seen.add(el);
    }
  }
  return bad;
}"""


@needs_chromium
@pytest.mark.parametrize("name", PAGES)
def test_page_fits_the_content_column(pages, name):
    bad = pages(name).page.evaluate(_OVERFLOW_JS, SCROLL_OK)
    assert bad == [], f"{name}: wider than the content column:\n" + "\n".join(bad[:20])


@needs_chromium
@pytest.mark.parametrize("name", PAGES)
def test_page_shows_no_error_output_and_no_injected_parameters(pages, name):
    page = pages(name).page
    assert page.locator(".cell_output .stderr, .cell_output .traceback, .cell_output .output.error").count() == 0
    outputs = page.locator(".cell_output").all_inner_texts()
    noisy = [text[:200] for text in outputs if NOISE.search(text)]
    assert noisy == [], f"{name}: warning, traceback or progress text in the outputs: {noisy}"
    assert page.locator(".tag_injected-parameters, .tag_parameters").count() == 0
    inputs = page.locator(".cell_input").all_inner_texts()
    assert not [t for t in inputs if t.lstrip().startswith("# Parameters") or "book = True" in t], \
        f"{name}: the injected parameters cell is shown"
    if name in CHAPTERS:
        assert page.get_by_text("Parameters of this run").count() == 1, f"{name}: no single parameters table"
        assert page.get_by_role("heading", name=re.compile(r"^What this shows")).count() == 1, name
        title = page.locator("article h1").first.inner_text()
        assert re.match(r"^\d\d · \S", title), f"{name}: chapter title {title!r} is not 'NN · Title'"


_PIXELS_JS = """root => Array.from(root.querySelectorAll('img'))
  .filter(i => i.offsetParent !== null && i.naturalWidth > 0)
  .map(i => { const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
              const ctx = c.getContext('2d'); ctx.drawImage(i, 0, 0);
              const d = ctx.getImageData(0, 0, c.width, c.height).data; let h = 0;
              for (let k = 0; k < d.length; k += 7) h = (h * 31 + d[k]) | 0;
              return `${c.width}x${c.height}:${h}`; }).join(',')"""


def _act(page, kind: str, control) -> None:
    if kind == "slider":
        handle = control.locator(".noUi-handle").first
        handle.focus()
        for _ in range(2):
            page.keyboard.press("ArrowRight")
    elif kind == "dropdown":
        current = control.input_value()
        values = [v for v in control.locator("option").evaluate_all("os => os.map(o => o.value)") if v != current]
        if values:
            control.select_option(values[0])
    elif kind == "toggle":
        control.locator("button:not(.mod-active)").first.click()
    else:
        control.click()
    page.wait_for_timeout(400)


@needs_chromium
@pytest.mark.parametrize("name", PAGES)
def test_every_widget_control_changes_the_displayed_image(pages, name):
    """Each control of the book either changes the image its widget shows, without a kernel, or is absent."""
    page = pages(name).page
    inert = []
    outputs = page.locator(".cell_output:has(.jupyter-widgets)")
    kinds = {"slider": ".widget-slider:not(.widget-readout)", "dropdown": ".widget-dropdown select",
             "toggle": ".widget-toggle-buttons", "checkbox": ".widget-checkbox input",
             "button": "button.widget-button"}
    for i in range(outputs.count()):
        output = outputs.nth(i)
        for kind, selector in kinds.items():
            controls = output.locator(selector)
            for k in range(controls.count()):
                control = controls.nth(k)
                if not control.is_visible():
                    continue
                label = control.evaluate("c => (c.closest('.widget-inline-hbox, .widget-box, .widget-hbox') "
                                         "|| c).innerText.trim().split('\\n')[0]")
                before = output.evaluate(_PIXELS_JS)
                _act(page, kind, control)
                after = output.evaluate(_PIXELS_JS)
                if kind == "slider" and after == before:  # at the end of its range: go the other way
                    for _ in range(4):
                        page.keyboard.press("ArrowLeft")
                    page.wait_for_timeout(400)
                    after = output.evaluate(_PIXELS_JS)
                if not before or after == before:
                    inert.append(f"{kind} {label!r}")
    assert inert == [], f"{name}: controls that do not change the displayed image in the static book: {inert}"
