# Quarry: two commands on a fresh machine.
#   make demo   install, start the local stack (real services on loopback), index a real
#               repository with a progress bar, query it
#   make test   install, lint, type-check, run the whole suite (it starts its own services)
# Both are safe to re-run.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# prometheus: Debian ships promtool in it, which checks and unit-tests config/prometheus/rules.yml.
# chromium: the browser that tests/ui drives through Playwright.
# git, openssh-server (and its client): the private-repository tests serve repositories
# through git http-backend and sshd on loopback, and the fetcher clones over ssh.
APT_PACKAGES := redis-server prometheus chromium git openssh-server openssh-client

.PHONY: demo test install system-deps lint typecheck pytest docs down status

demo: install
	$(BIN)/quarry dev up
	$(BIN)/quarry dev status
	BIN=$(BIN) scripts/demo.sh
	@echo
	@echo "Stack is up. Next: eval \"\$$($(BIN)/quarry dev env)\"; stop it with: $(BIN)/quarry dev down"

test: install lint typecheck pytest

# The API's query model is exported to ONNX here (idempotent): the API never imports torch.
install: system-deps $(STAMP)
	$(BIN)/quarry model export --quiet

# torch first, from its pinned CPU wheel, so that nothing pulls a CUDA build from PyPI.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) is required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[server,dev]'
	touch $(STAMP)

system-deps:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

docs: install
	$(BIN)/python -c "import pathlib,re,subprocess; p=pathlib.Path('docs/configuration.md'); head=p.read_text().split('| variable |')[0]; p.write_text(head + subprocess.run(['$(BIN)/quarry','config','docs'],capture_output=True,text=True,check=True).stdout)"

status: install
	$(BIN)/quarry dev status

down: install
	$(BIN)/quarry dev down
