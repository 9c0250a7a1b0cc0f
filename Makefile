# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit soak bench clean mosquitto

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	@test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train,dali,bacnet,federation,http]'
	@# pip compiles what it installs, but not the project's own modules (an editable install), and
	@# with PYTHONDONTWRITEBYTECODE set nothing would ever write them: every daemon and CLI call
	@# the tests start would compile the project from source again (0.2 s of CPU each, measured).
	$(BIN)/python -m compileall -q -j 0 edge_agent drivers firmware_bridge models rules simulator benchmarks >/dev/null
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edge-agent demo

mosquitto:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "mosquitto not found: installing Debian's package"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	    systemctl disable --now mosquitto >/dev/null 2>&1 || true; \
	  else \
	    echo "The tests need the mosquitto broker binary. Run: sudo apt-get install mosquitto"; exit 2; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check --output-format concise .

typecheck: $(STAMP)
	$(BIN)/mypy

# Three workers on two cores: the end-to-end tests spend much of their time waiting on daemons
# that run in real time, and a third worker fills it (304 s against 345 s with two, measured).
unit: $(STAMP) mosquitto
	$(BIN)/pytest -q -n 3 --dist loadfile -m "not soak"

# The other whole simulated days (exam week, the same seed twice, building systems, the adaptive
# space): long, so apart from `make test`; CI runs both.
soak: $(STAMP) mosquitto
	$(BIN)/pytest -q -n 2 --dist loadfile -m soak

# The type check runs beside the tests: they leave a core idle while they wait on their daemons.
test: lint
	$(MAKE) --no-print-directory -j2 typecheck unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
