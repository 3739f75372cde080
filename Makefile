# One command to install everything and run the demo, one to install and run the tests.
#   make demo    synthetic MUSDB18-HQ -> recipe stages 1-8 -> RESULTS.md
#   make test    the whole pytest suite
# Every target installs what is missing first and is safe to run again.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# pip 26.3 and newer refuse to install espnet (a dependency declares a URL requirement)
PIP_PIN := pip>=23,<26.3
SITE_PACKAGES = $(shell $(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

.PHONY: setup system-deps venv install-plugin uninstall-plugin test test-fast demo lint bench clean

setup: system-deps $(VENV)/.installed install-plugin

# museval imports stempeg, which refuses to import without ffmpeg and ffprobe on PATH
system-deps:
	@if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then \
		echo "ffmpeg: present"; \
	else \
		echo "ffmpeg: installing Debian's package"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ffmpeg; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q "$(PIP_PIN)"
	$(VPY) -m pip install -q -r requirements-dev.txt
	@touch $@

install-plugin: $(VENV)/.installed
	bash copy_files_to_espnet.sh "$(SITE_PACKAGES)"

uninstall-plugin: $(VENV)/.installed
	bash copy_files_to_espnet.sh --uninstall "$(SITE_PACKAGES)"

test: setup
	$(VPY) -m pytest

test-fast: setup
	$(VPY) -m pytest -m "not slow"

demo: setup
	cd egs2/musdb18hq/enh1 && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./run.sh --demo true

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check standalone tests

bench: setup
	$(VPY) tools/benchmark.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
