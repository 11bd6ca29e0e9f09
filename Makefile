# Two entry points for people: `make demo` and `make test`. Everything else is plumbing.
VENV ?= .venv
PY := $(VENV)/bin/python
RAGKB := $(VENV)/bin/ragkb
DEMO_HOME ?= .ragkb-demo
DEMO_QUESTION ?= What is LayoutParser and what does it provide?

.PHONY: install demo test test-fast system-deps

install: $(VENV)/.installed

# torchvision arrives through unstructured[pdf] -> unstructured-inference -> timm, and the PyPI
# build does not match the local CPU torch ("operator torchvision::nms does not exist");
# ragkb never uses it, so it is removed right after install.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PY) -m pip install --quiet -e ".[llamacpp,int8,eval,dev]"
	$(PY) -m pip uninstall --quiet -y torchvision
	touch $@

demo: install
	RAGKB_HOME=$(DEMO_HOME) $(RAGKB) ingest samples/
	RAGKB_HOME=$(DEMO_HOME) $(RAGKB) ask "$(DEMO_QUESTION)"

# Debian packages ragkb and its tests need, as command:package, installed here when running as
# root (CI, containers): Tesseract and poppler for OCR of scans, chromium for the browser tests,
# strace for the no-egress test (it traces native connects).
SYSTEM_PACKAGES := tesseract:tesseract-ocr pdftoppm:poppler-utils chromium:chromium strace:strace
system-deps:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
		|| echo "warning: missing$$missing; the tests that need them will fail"; \
	fi

test: install system-deps
	$(VENV)/bin/pytest -m "slow or not slow"

test-fast: install
	$(VENV)/bin/pytest
