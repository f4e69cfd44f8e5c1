// Loaded (by myst-nb's nb_ipywidgets_js, see _config.yml) between require.js and embed-amd.js on pages
// holding ipywidgets. The widget bundle derives the URL of its font files from its require.js module id
// (<page folder>/@jupyter-widgets/…); point those ids at _static/vendor/, where
// scripts/fetch_book_assets.sh put the fonts, so the static book loads everything locally.
(function () {
  var script = document.querySelector('script[src*="vendor/require.js"]');
  if (!script || !window.require) {
    return;
  }
  var base = script.src.replace(/[?#].*$/, "").replace(/[^/]*$/, "");
  window.__jupyter_widgets_assets_path__ = base;
  var paths = { "@jupyter-widgets/html-manager/dist": base.replace(/\/$/, "") };
  ["base", "controls", "output", "html-manager", "base7", "controls7"].forEach(function (name) {
    paths["@jupyter-widgets/" + name] = base + name; // module id -> a URL inside _static/vendor/
  });
  window.require.config({ paths: paths });
})();
