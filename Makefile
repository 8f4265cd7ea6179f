# Terra: `make demo` and `make test` do everything from a fresh Debian 12 machine.
# Each step is idempotent and quick when there is nothing left to do.

PYTHON_BASE ?= python3
VENV        := $(CURDIR)/.venv
PY          := $(VENV)/bin/python
BUILD       := $(CURDIR)/build
STAMPS      := $(CURDIR)/.stamps
ARTIFACTS   := $(CURDIR)/artifacts
JOBS        ?= $(shell nproc)
BUILD_TYPE  ?= Release

export CCACHE_DIR ?= $(HOME)/.cache/ccache
# Paths below the checkout hash relative, so a fresh clone elsewhere still hits the cache.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
# The precompiled header (coexec) is cacheable only with these (ccache manual, "Precompiled headers").
export CCACHE_SLOPPINESS := pch_defines,time_macros,include_file_mtime,include_file_ctime
export PYTHONDONTWRITEBYTECODE = 1
export JUPYTER_PATH := $(VENV)/share/jupyter
export JUPYTER_PLATFORM_DIRS = 1

.PHONY: all setup system venv build install demo test test-cpp test-python bench bench-full format clean help

all: install

help:
	@echo "make demo   set up, build, run notebooks/quickstart.ipynb headless under the Terra kernel"
	@echo "make test   set up, build, run every test (ctest, pytest: engine, kernel, notebooks, browser)"
	@echo "make bench  the benchmark suite's full run (not part of CI)"

setup: system venv

system: $(STAMPS)/system
$(STAMPS)/system: tools/setup_system.sh
	@bash tools/setup_system.sh
	@mkdir -p $(STAMPS) && touch $@

venv: $(STAMPS)/venv
$(STAMPS)/venv: requirements.lock | $(STAMPS)/system
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@mkdir -p $(STAMPS) && touch $@

$(BUILD)/build.ninja: CMakeLists.txt | $(STAMPS)/venv
	@cmake -S . -B $(BUILD) -G Ninja \
	  -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	  -DCMAKE_INSTALL_PREFIX=$(VENV) \
	  -DPython_EXECUTABLE=$(PY) > $(BUILD).configure.log 2>&1 \
	  || (cat $(BUILD).configure.log; exit 1)

build: $(BUILD)/build.ninja
	@cmake --build $(BUILD) -j $(JOBS)

install: build
	@cmake --install $(BUILD) > /dev/null
	@$(PY) tools/install_package.py

demo: install
	@mkdir -p $(ARTIFACTS)
	@$(VENV)/bin/jupyter nbconvert --to html --execute \
	  --ExecutePreprocessor.kernel_name=terra --ExecutePreprocessor.timeout=600 \
	  --ExecutePreprocessor.store_widget_state=False \
	  --output-dir $(ARTIFACTS) notebooks/quickstart.ipynb
	@echo "demo: report written to $(ARTIFACTS)/quickstart.html"

test: install
	@mkdir -p $(ARTIFACTS)
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(PY) -m pytest tests -p no:cacheprovider -ra

bench: install
	@$(PY) -m bench --full

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD).configure.log $(STAMPS)
