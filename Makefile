# One command each: `make demo` (set up + a style transfer of the sample images) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test demo samples clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/dreamstyle transfer samples/inputs/chelsea.png samples/inputs/dream_style.png \
		-o out/demo.png --size 384 --overwrite
	@echo "wrote out/demo.png"

samples: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[samples]'
	bash samples/make_samples.sh

clean:
	rm -rf $(VENV) out
