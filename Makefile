# Two commands matter: `make demo` and `make test`. Everything else is what they stand on.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup system-deps demo lint test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when pyproject.toml or setup.py changes (the editable finder maps templates/ when it
# is installed); the editable install picks up code changes by itself.
$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(STAMP)

# Tests start real sshd servers, use real rsync, mount with real sshfs (transport = "sshfs"),
# run the dashboard in a real terminal (tmux) and load `sfarm web` in Debian's chromium (driven
# by playwright, which downloads no browser); install them when missing and we are root.
system-deps:
	@missing=""; \
	command -v rsync >/dev/null 2>&1 || missing="$$missing rsync"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v sshfs >/dev/null 2>&1 || missing="$$missing sshfs"; \
	command -v fusermount3 >/dev/null 2>&1 || missing="$$missing fuse3"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v ssh >/dev/null 2>&1 || missing="$$missing openssh-client"; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing:$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "missing:$$missing (tests that need them are skipped; install them as root)"; \
		fi; \
	fi

# The embedded local farm: the emulator as a service, a miner, indicators and a paper session.
demo: setup
	$(BIN)/sfarm validate -i inventory/local.toml
	$(BIN)/sfarm up -i inventory/local.toml --wait 180
	$(BIN)/sfarm status -i inventory/local.toml
	@echo
	@echo "The local farm is up (inventory/local.toml, data in inventory/.sfarm/). Next:"
	@echo "  . .venv/bin/activate && export SFARM_INVENTORY=inventory/local.toml"
	@echo "  sfarm tui                     # the dashboard: every task live, q to leave"
	@echo "  sfarm status --watch          # refreshes in place, Ctrl-C to leave"
	@echo "  sfarm logs lab rsi-paper -f   # follow the paper session's log"
	@echo "  sfarm report rsi-paper        # the paper session's equity, trades and chart"
	@echo "  sfarm data ls --node lab      # the datasets the farm has made"
	@echo "  sfarm plan                    # who produces and reads every dataset"
	@echo "  sfarm down                    # stop every worker; no process is left"

# Static checks, fastest first; their settings are in pyproject.toml ([tool.ruff*], [tool.mypy*],
# [tool.importlinter]): lint rules, typing strictness, and the package layers with the imports
# each package may make.
lint: setup
	$(BIN)/ruff check
	$(BIN)/mypy
	$(BIN)/lint-imports

# Three workers (tests mostly wait on real processes), a test file to each (a file's tests share
# their fixtures' servers); the slowest tests are listed at the end. The suite starts hundreds of
# sfarm processes: sfarm's bytecode is written first, so none compiles its modules again where
# PYTHONDONTWRITEBYTECODE is set (~0.15 s of CPU a process).
test: lint system-deps
	$(BIN)/python -m compileall -q sfarm
	$(BIN)/python -m pytest -n 3 --dist loadfile --durations=15

bench: setup
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m pytest tests/benchmarks -p no:cacheprovider -o addopts="" -s

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info .ruff_cache .mypy_cache \
		.import_linter_cache .grimp_cache
