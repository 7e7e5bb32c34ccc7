# AuthSec Server — `make run` starts everything; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The venv can be put elsewhere (`make run VENV=.local/smoke-venv`: the CI smoke, scripts/smoke_run.py).
VENV   ?= .venv
BIN    := $(VENV)/bin
# Installs only what the locks name, each file checked against its recorded hash (docs/running.md).
PIP_INSTALL := $(BIN)/python -m pip install -q --require-hashes
# The locking tool lives in its own venv, never in the project's.
LOCK_VENV  := .local/lock-venv
UV_VERSION := 0.13.8
# PyPI only, whatever the machine's pip/uv configuration says: the locks must install on a fresh machine.
LOCK_FLAGS := pip compile --quiet --no-config --universal --python-version 3.11 \
	--index-url https://pypi.org/simple --generate-hashes --custom-compile-command "make lock"

.PHONY: run test install install-dev lock browsers axe prometheus haproxy fault-servers bench-faults lint format migrate shell clean bench-rbac bench-oauth bench-oauth-instructions bench-mcp bench-audit soak

run: install
	$(BIN)/python scripts/devstack.py run

# Two pytest-xdist workers, a test module each at a time (docs/running.md); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: install-dev browsers axe prometheus haproxy fault-servers
	$(BIN)/python scripts/devstack.py test -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(VENV)/bin/python
	$(PIP_INSTALL) -r requirements.txt
	touch $@

# The dev lock adds only dev-only packages; every runtime package comes from requirements.txt.
$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PIP_INSTALL) -r requirements.txt -r requirements-dev.txt
	touch $@ $(VENV)/.installed

# Regenerates requirements.txt / requirements-dev.txt from the .in files, keeping every pin the .in files
# allow; `make lock UPGRADE=name` moves that one package (and what it needs) to its newest allowed version.
lock: $(LOCK_VENV)/bin/uv
	$(LOCK_VENV)/bin/uv $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade-package $(UPGRADE)) requirements.in -o requirements.txt
	$(LOCK_VENV)/bin/uv $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade-package $(UPGRADE)) requirements-dev.in -o requirements-dev.txt

$(LOCK_VENV)/bin/uv:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q uv==$(UV_VERSION)

# Browser tests use Debian's chromium + chromedriver (selenium must not download a browser).
browsers:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium + chromium-driver (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "browser tests need chromium and chromium-driver: sudo apt-get install chromium chromium-driver" >&2; exit 1; \
	fi

# The browser tests' accessibility checks inject axe-core (tests/support/axe.py): the version and sha512 pinned in
# tests/support/axe-core/package-lock.json, installed by `npm ci` (which checks that hash) into .local/axe-core from
# the npm registry only. npm comes from Debian's nodejs + npm packages when missing (docs/running.md).
AXE_DIR := .local/axe-core
axe: $(AXE_DIR)/node_modules/axe-core/axe.min.js

$(AXE_DIR)/node_modules/axe-core/axe.min.js: tests/support/axe-core/package.json tests/support/axe-core/package-lock.json
	@if command -v npm >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing nodejs + npm (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	else \
		echo "the accessibility checks need npm to install axe-core: sudo apt-get install nodejs npm" >&2; exit 1; \
	fi
	mkdir -p $(AXE_DIR)
	cp tests/support/axe-core/package.json tests/support/axe-core/package-lock.json $(AXE_DIR)/
	cd $(AXE_DIR) && npm ci --ignore-scripts --no-audit --no-fund --update-notifier=false \
		--registry https://registry.npmjs.org/ --loglevel error
	touch $@

# The metrics tests scrape a live server with Debian's Prometheus and check the alert rules with its promtool
# (docs/observability.md).
prometheus:
	@if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing prometheus (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	else \
		echo "the metrics tests need Debian's prometheus: sudo apt-get install prometheus" >&2; exit 1; \
	fi

# The two-node topology tests (tests/topology/) put Debian's HAProxy in front of two web nodes, with the config
# shipped in deploy/haproxy.cfg (docs/running.md).
haproxy:
	@if [ -x /usr/sbin/haproxy ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing haproxy (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null; \
	else \
		echo "the topology tests need Debian's haproxy: sudo apt-get install haproxy" >&2; exit 1; \
	fi

# The fault tests (tests/reliability/) and `make bench-faults` break servers of their own: Debian's redis-server,
# and for the bench a Postgres cluster of its own (Debian's postgresql binaries: initdb, pg_ctl).
fault-servers:
	@if [ -x /usr/bin/redis-server ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing redis-server and postgresql (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server postgresql >/dev/null; \
	else \
		echo "the fault tests need Debian's redis-server and postgresql: sudo apt-get install redis-server postgresql" >&2; exit 1; \
	fi

# Faults under load through the two-node topology, on throwaway Postgres, Redis and OpenBao it starts itself
# (never the machine's): Redis and OpenBao stopped, Postgres restarted, a web node SIGKILLed (docs/benchmarks.md).
bench-faults: install-dev haproxy fault-servers
	$(BIN)/python bench/faults_bench.py

# Measures the RBAC engine and grants fetch against real Postgres/Redis in its own database (docs/benchmarks.md).
bench-rbac: install-dev
	$(BIN)/python scripts/devstack.py exec --database authsec_bench -- $(BIN)/python bench/rbac_bench.py

# A bounded mixed load for SOAK_MINUTES (default 20) with every process's RSS sampled once a minute: growth after
# warm-up per process (target ≤ 10 MB) and errors (target 0), in its own database (docs/benchmarks.md, "Memory").
SOAK_DATABASE ?= authsec_soak
soak: install-dev haproxy
	$(BIN)/python scripts/devstack.py exec --database $(SOAK_DATABASE) -- $(BIN)/python bench/soak.py

# Our MCP endpoint (bearer JWT + RBAC + audit) vs a plain mcp server under the same uvicorn (docs/benchmarks.md).
bench-mcp: install-dev
	$(BIN)/python scripts/devstack.py exec --database authsec_bench -- $(BIN)/python bench/mcp_bench.py

# Token-endpoint requests/s and JWT verifications/s, in tenant `bench` of its own database (docs/benchmarks.md).
# DEBUG off, as in production (issue 21's targets are for that); the public URL is the issuer's.
bench-oauth: install-dev
	DEBUG=0 AUTHSEC_PUBLIC_URL=http://127.0.0.1:8000 ALLOWED_HOSTS=127.0.0.1 \
		$(BIN)/python scripts/devstack.py exec --database authsec_bench_oauth -- $(BIN)/python bench/oauth_bench.py

# The same token requests counted rather than timed: queries and callgrind instructions per request, one row per
# grant type (valgrind from Debian's package; docs/benchmarks.md). Steady on a busy machine, unlike requests/s.
bench-oauth-instructions: install-dev
	mkdir -p .local/callgrind
	DEBUG=0 AUTHSEC_PUBLIC_URL=http://127.0.0.1:8000 ALLOWED_HOSTS=127.0.0.1 \
		$(BIN)/python scripts/devstack.py exec --database authsec_bench_oauth -- env CALLGRIND_DIR=.local/callgrind \
		valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=.local/callgrind/oauth.%p \
		$(BIN)/python bench/oauth_callgrind.py

# Loads 1,000,000 chained audit events into tenant auditbench (once) and times the review pages, exports and
# record(), in its own database (docs/benchmarks.md).
bench-audit: install-dev
	$(BIN)/python scripts/devstack.py exec --database authsec_bench_audit -- $(BIN)/python bench/audit_bench.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .local/static .local/logs
