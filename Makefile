# One command each: `make demo` (set up + a style transfer of the sample images) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint demo samples clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# ruff's checks as pyproject.toml selects them (pyflakes, import order, pyupgrade, bugbear), and its
# formatter's verdict (`ruff format dreamstyle tests benchmarks plugins` fixes what it finds)
lint: $(STAMP)
	$(BIN)/ruff check dreamstyle tests benchmarks plugins
	$(BIN)/ruff format --check dreamstyle tests benchmarks plugins

# The newcomer's first picture: the cat in the style of The Starry Night, coarse to fine (192 then
# 384 px, ITERATIONS L-BFGS steps each): about 45 s on two CPU cores. CI runs it with ITERATIONS=3.
ITERATIONS ?= 100
demo: $(STAMP)
	@mkdir -p out
	$(BIN)/dreamstyle transfer samples/inputs/chelsea.png samples/inputs/starry_night.jpg \
		-o out/demo.png --size 384 --scales 192,384 --iterations $(ITERATIONS) --seed 0 --overwrite

samples: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[samples]'
	bash samples/make_samples.sh

clean:
	rm -rf $(VENV) out
