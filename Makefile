# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install tshark chromium clean baselines bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,kafka]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sigloc demo --out out/demo

# tshark is the oracle of the differential tests; install Debian's package non-interactively when missing.
tshark:
	@command -v tshark >/dev/null || { \
	  SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | $$SUDO debconf-set-selections; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark; }

# The web UI tests drive Debian's chromium headless through Playwright (no browser download needed).
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: $(STAMP) tshark chromium
	$(PY) -m pytest -q

# The expected outputs of tests/cases/ are regenerated here, never by hand (review the diff before committing).
baselines: $(STAMP)
	$(PY) tests/cases/make_cases.py --refresh

# Throughput against tshark and pycrate on a simulated city (a few minutes); figures go to docs/benchmarks.md.
bench: $(STAMP) tshark
	$(PY) bench/bench_capture.py --markdown
	$(PY) bench/bench_decode.py --markdown
	$(PY) bench/bench_decoders.py

clean:
	rm -rf out build *.egg-info .pytest_cache
