#!/usr/bin/env bash
# Fetch the JavaScript the static book needs for ipywidgets, from the npm registry, so that the built HTML
# loads only local files (no CDN): require.js and the @jupyter-widgets/html-manager embed bundle (with its
# fonts). They go to book/_static/vendor/ (git-ignored, never committed); _config.yml points myst-nb there.
#
#   scripts/fetch_book_assets.sh            # idempotent: does nothing when the files are already there
set -euo pipefail

HTML_MANAGER_VERSION="${HTML_MANAGER_VERSION:-1.0.15}"   # @jupyter-widgets/html-manager for ipywidgets 8
REQUIREJS_VERSION="${REQUIREJS_VERSION:-2.3.8}"
MATHJAX_VERSION="${MATHJAX_VERSION:-3.2.2}"                # pages with math (Sphinx mathjax_path)

root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/book/_static/vendor"
stamp="$vendor/.versions"
want="html-manager@$HTML_MANAGER_VERSION requirejs@$REQUIREJS_VERSION mathjax@$MATHJAX_VERSION"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -s "$vendor/require.js" && -s "$vendor/embed-amd.js" && -s "$vendor/mathjax/tex-chtml.js" ]]; then
  echo "book assets up to date ($want) in $vendor"
  exit 0
fi
command -v npm >/dev/null || { echo "error: npm is needed to fetch the book's widget assets (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@jupyter-widgets/html-manager@$HTML_MANAGER_VERSION" "requirejs@$REQUIREJS_VERSION" \
  "mathjax@$MATHJAX_VERSION" >/dev/null)
mkdir -p "$work/hm" "$work/rq" "$work/mj"
tar -xzf "$work"/jupyter-widgets-html-manager-"$HTML_MANAGER_VERSION".tgz -C "$work/hm"
tar -xzf "$work"/requirejs-"$REQUIREJS_VERSION".tgz -C "$work/rq"
tar -xzf "$work"/mathjax-"$MATHJAX_VERSION".tgz -C "$work/mj"

tmp="$vendor.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
cp "$work/rq/package/require.js" "$tmp/require.js"
# embed-amd.js plus the font files its bundled CSS refers to (same folder, relative URLs); no source maps
find "$work/hm/package/dist" -maxdepth 1 -type f ! -name '*.map' ! -name 'embed.js' ! -name 'libembed-amd.js' \
  -exec cp {} "$tmp/" \;
# MathJax: the combined TeX→CommonHTML bundle, its fonts and the TeX extensions it may autoload
mj="$work/mj/package/es5"
mkdir -p "$tmp/mathjax/output/chtml/fonts" "$tmp/mathjax/input/tex"
cp "$mj/tex-chtml.js" "$tmp/mathjax/"
cp -r "$mj/output/chtml/fonts/woff-v2" "$tmp/mathjax/output/chtml/fonts/"
cp -r "$mj/input/tex/extensions" "$tmp/mathjax/input/tex/"
cp "$work/mj/package/LICENSE" "$tmp/mathjax/LICENSE" 2>/dev/null || true
cp "$work/hm/package/LICENSE"* "$tmp/LICENSE.html-manager" 2>/dev/null || true
cp "$work/rq/package/LICENSE"* "$tmp/LICENSE.requirejs" 2>/dev/null || true
echo "$want" > "$tmp/.versions"
test -s "$tmp/embed-amd.js" || { echo "error: embed-amd.js missing from the html-manager package" >&2; exit 1; }
rm -rf "$vendor" && mv "$tmp" "$vendor"
echo "fetched $want into $vendor ($(du -sh "$vendor" | cut -f1))"
