# Two commands from a fresh clone: `make test` and `make demo` (each sets the environment up first).
# STACK=openmmlab (default, .venv) or STACK=onedl (the maintained fork, .venv-onedl): see the README.
STACK ?= openmmlab
ifeq ($(STACK),onedl)
VENV ?= .venv-onedl
# What can differ between the stacks: registration, configs, tools, checkpoint loading, the patches,
# demo-size training steps. The backbones' own maths is the same torch code on both.
TEST_PATHS ?= tests/test_compat.py tests/test_registration tests/test_configs tests/test_tools tests/test_checkpoint \
	tests/test_models
else
VENV ?= .venv
TEST_PATHS ?= tests
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmvit-setup
DEMO_DATA ?= data/demo
DEMO_WORK ?= work_dirs/demo
PYTEST_ARGS ?=

.PHONY: setup test lint demo demo-data clean-demo

# The stamp makes a second `make` free; the script itself also skips what is already installed.
$(STAMP): setup.py tools/misc/setup_env.sh
	STACK=$(STACK) VENV=$(VENV) bash tools/misc/setup_env.sh
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(PY) -m pytest $(TEST_PATHS) -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

demo-data: setup
	$(PY) tools/misc/generate_demo_data.py $(DEMO_DATA)

demo: demo-data
	$(PY) tools/misc/run_demo.py --data-root $(DEMO_DATA) --work-dir $(DEMO_WORK)

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_WORK)
