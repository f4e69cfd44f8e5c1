# BraTS Lab: set-up, demo and tests. Every target is idempotent (a second run only redoes what changed).
#
#   make demo                 # venv, book assets, synthetic data, notebooks (demo profile), the HTML book
#   make test                 # the whole pytest suite (unit tests, nbval over the notebooks, the book in Chromium)
#   make notebooks PROFILE=full BRATS_DATA_DIR=/data/BraTS2024-GLI/training && make book
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := demo

PROFILE ?= demo
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.brats-lab-installed
ASSETS_STAMP := book/_static/vendor/.versions
DATA_DIR ?= data/synthetic
PYTEST_ARGS ?= --durations=25
PORT ?= 8866

.PHONY: venv assets chromium data notebooks book demo study real test app clean distclean help

help:
	@echo "targets: venv assets chromium data notebooks book demo study real test app clean distclean (PROFILE=$(PROFILE))"

# --- set-up ------------------------------------------------------------------------------------------
VOILA_TEMPLATE := $(VENV)/share/jupyter/voila/templates/brats

venv: $(VENV_STAMP) $(VOILA_TEMPLATE)

# the app's Voilà template (voila.json: "template": "brats"), linked into the venv so that a plain `voila` finds it
$(VOILA_TEMPLATE): $(VENV_STAMP)
	@mkdir -p $(dir $@)
	ln -sfn $(CURDIR)/share/jupyter/voila/templates/brats $@

$(VENV_STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# require.js, @jupyter-widgets/html-manager and MathJax from the npm registry, for the offline book
assets: $(ASSETS_STAMP)

$(ASSETS_STAMP): scripts/fetch_book_assets.sh
	scripts/fetch_book_assets.sh
	@touch $@

# headless browser for tests/test_book.py (Debian package; needs root or sudo)
chromium:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: $$(/usr/bin/chromium --version 2>/dev/null | head -1)"; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; fi

# --- demo ----------------------------------------------------------------------------------------------
# the synthetic dataset of the demo profile (n_cases and seed read from notebooks/profiles/demo.yml)
data: venv
	@if [ "$(PROFILE)" = demo ]; then \
	  read -r n seed < <($(PY) -c "import yaml; p = yaml.safe_load(open('notebooks/profiles/demo.yml')); \
	    print(p.get('00_dataset.ipynb', {}).get('n_cases', 8), p.get('_defaults', {}).get('seed', 0))"); \
	  $(VENV)/bin/brats synth --out $(DATA_DIR) --n $$n --seed $$seed --followups; \
	else echo "data: profile $(PROFILE) reads its own dataset (see notebooks/profiles/$(PROFILE).yml)"; fi

notebooks: venv
	$(PY) scripts/run_notebooks.py --profile $(PROFILE) --out book/executed

# the HTML report from the executed notebooks (fresh _build/html: Sphinx keeps stale static files)
book: venv assets
	@ls book/executed/[0-9][0-9]_*.ipynb >/dev/null 2>&1 || { echo "book: no executed notebooks in book/executed (run make notebooks)" >&2; exit 1; }
	@rm -rf _build/html
	@start=$$(date +%s); \
	  $(VENV)/bin/jupyter-book build . --warningiserror --keep-going --quiet; \
	  echo "book built in $$(( $$(date +%s) - start )) s: $(CURDIR)/_build/html/index.html"

demo:
	@start=$$(date +%s); \
	  $(MAKE) --no-print-directory venv assets data notebooks book PROFILE=$(PROFILE); \
	  echo "make demo: total $$(( $$(date +%s) - start )) s"

# the studies (profile `study`, after `make demo`): issue 12's GAN experiment at every and at half of the training
# cases (about 47 and 35 minutes on 2 busy cores), then notebook 07 with its result and notebook 11's half-width
# ablation sweep in runs/study/ablation_cpu (about 45 minutes); finished runs are kept, so a second run only reads them
study: venv data
	@test -f runs/demo/gan/best.pt || { echo "study: no GAN run in runs/demo/gan (run make demo first)" >&2; exit 2; }
	$(PY) benchmarks/gan_experiment.py --gan-run runs/demo/gan --out runs/study/gan_experiment
	$(PY) benchmarks/gan_experiment.py --gan-run runs/demo/gan --out runs/study/gan_experiment_f05 --fractions 0.5
	$(PY) scripts/run_notebooks.py --profile study --out book/executed

# the real-data chapter (notebook 12, profile `real`): patient-level 3-fold cross-validations of the real sample
# cases (../shared/data/real), 275 iterations per fold (11 x 25: what 15 minutes give on 2 idle CPU cores; a fixed
# count keeps the arms comparable on a busy machine): real cases only, + 6 domain-randomised synthetic cases, and
# the same with sigmoid region outputs (the recipe real_sample_train.py's defaults train), and issue 12's real-data
# arm (+ 6 copy-paste or GAN inserted-tumour cases made per fold from its training cases, compared patient by patient
# in runs/real-cv/gan-arm-*); 40-77 minutes each on 2 cores (a finished one is only read again), then the chapter
REAL_CV = $(PY) benchmarks/real_sample_train.py --cv 3 --epochs 11 --minutes 120 --cache-dir runs/real-cv/cache --no-tta
real: venv
	@test -d ../shared/data/real || { echo "real: ../shared/data/real not found (the real sample cases)" >&2; exit 2; }
	PYTHONPATH=$(CURDIR) $(REAL_CV) --cv-dir runs/real-cv/m15 --synthetic 0 --output-mode softmax
	PYTHONPATH=$(CURDIR) $(REAL_CV) --cv-dir runs/real-cv/m15-dr6 --synthetic 6 --output-mode softmax
	PYTHONPATH=$(CURDIR) $(REAL_CV) --cv-dir runs/real-cv/m15-dr6-regions --synthetic 6 --output-mode regions
	PYTHONPATH=$(CURDIR) $(REAL_CV) --cv-dir runs/real-cv/m15-cp6 --cache-dir runs/real-cv/cache-cp6 --synthetic 6 --synthetic-method copy_paste --output-mode softmax
	PYTHONPATH=$(CURDIR) $(REAL_CV) --cv-dir runs/real-cv/m15-gan6 --cache-dir runs/real-cv/cache-gan6 --synthetic 6 --synthetic-method gan --output-mode softmax
	for v in none rules; do $(PY) benchmarks/compare_cv.py --arm real=runs/real-cv/m15 --arm copy_paste=runs/real-cv/m15-cp6 \
	  --arm gan=runs/real-cv/m15-gan6 --arm generator=runs/real-cv/m15-dr6 --variant $$v --out runs/real-cv/gan-arm-$$v --conspicuity; done
	$(PY) scripts/run_notebooks.py --profile real --only 12_real_data --out book/executed

# --- tests ---------------------------------------------------------------------------------------------
test: venv assets chromium
	@start=$$(date +%s); \
	  $(PY) -m pytest tests/ $(PYTEST_ARGS); \
	  echo "make test: total $$(( $$(date +%s) - start )) s"

# --- the app ----------------------------------------------------------------------------------------------
# notebooks/10_segment_app.ipynb as a web page at http://localhost:$(PORT)/ (Voila reads ./voila.json: the
# WebSocket message limit raised so that uploads of four 1 mm volumes, about 40 MB, go through)
app: venv
	@test -d runs/demo || echo "app: no trained runs in runs/demo yet (make demo trains them); the page will say so" >&2
	JUPYTER_PATH=$(CURDIR)/share/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH} \
	  $(VENV)/bin/voila notebooks/10_segment_app.ipynb --port=$(PORT) --no-browser

clean:
	rm -rf _build book/executed .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) book/_static/vendor $(DATA_DIR) data/cache
