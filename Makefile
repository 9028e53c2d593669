# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

export LUNARIA_DATABASE_URL ?= sqlite:///var/lunaria.db
export LUNARIA_KEY_FILE     ?= var/log.key

.PHONY: run test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-base

# Node packages: solc (builds contracts/build/) and anvil (a local chain for the contract tests).
# The registry reachable here serves only anvil's linux-x64 binary package; package-lock.json
# carries hand-added os/cpu-only entries for the other platforms so that `npm ci` accepts it.
# A regenerated lockfile loses them and npm ci then fails with "Missing: ... from lock file".
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Swagger UI for /api/v1/docs, from the pinned swagger-ui-dist devDependency. The copy in
# api/static/vendor/swagger-ui/ is committed (running Lunaria needs no npm);
# tests/test_api_docs.py checks that it equals node_modules' files. Run after changing the pin.
SWAGGER_UI_FILES = swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE
.PHONY: vendor
vendor: node_modules/.installed
	mkdir -p api/static/vendor/swagger-ui
	cd node_modules/swagger-ui-dist && cp $(SWAGGER_UI_FILES) $(CURDIR)/api/static/vendor/swagger-ui/

# Debian's chromium for the browser tests (Playwright drives it; its own download fails here).
.PHONY: chromium
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# nginx-light: tests/test_proxy.py runs docs/operations.md's reverse-proxy configuration.
.PHONY: nginx
nginx:
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update && apt-get install -y nginx-light)

# poppler-utils: the report tests render every PDF page with pdftoppm.
.PHONY: poppler
poppler:
	command -v pdftoppm >/dev/null || (apt-get update && apt-get install -y poppler-utils)

# Web page translations: extract the messages, update the es/uk catalogs, compile them. The .mo
# files are committed (running Lunaria needs no build step); tests/test_web.py checks they match.
.PHONY: translations
translations: $(VENV)/.installed-dev
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext --no-location --sort-output -w 100 \
		--project Lunaria --version 0.1.0 --copyright-holder "Lunaria contributors" -o api/translations/messages.pot .
	$(BIN)/pybabel update -i api/translations/messages.pot -d api/translations -N -w 100 \
		--ignore-obsolete
	$(BIN)/pybabel compile -d api/translations

.PHONY: contracts
contracts: node_modules/.installed
	node contracts/compile.mjs

var:
	mkdir -p var

# A new database gets the demo history unless LUNARIA_DEMO=0; an existing one is left alone.
# `lunaria worker` (checkpoints, handovers at new moons) runs beside the web server
# (`lunaria serve`: waitress, which reads slow clients without tying up a thread; see
# api/serve_cli.py): Ctrl-C, or the server stopping, stops both.
run: $(VENV)/.installed-base | var
	@$(BIN)/lunaria init $(if $(filter 0,$(LUNARIA_DEMO)),,--demo)
	@$(BIN)/lunaria worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/lunaria serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check ledger api contracts exports tests bench wsgi.py
	$(BIN)/ruff format --check ledger api contracts exports tests bench wsgi.py

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Three workers on two CPUs: much of the suite waits on servers, subprocesses and PostgreSQL.
PYTEST_ARGS ?= -n 3 --dist loadgroup

test: $(VENV)/.installed-dev node_modules/.installed chromium poppler nginx lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# One benchmark at its full size: BENCH is the name of a script in bench/ (ledger_core, the
# default; anchor, api_write, bank_import, chain_scan, http_floor, mirror_catchup, public_read,
# report_burst, reports, witness_quorum, worker), BENCH_ARGS its options (--quick,
# --sqlite-only, ...; see its docstring). `make test` runs every one of them in its --smoke
# mode (tests/test_bench_smoke.py).
BENCH ?= ledger_core
bench: $(VENV)/.installed-dev node_modules/.installed
	$(BIN)/python bench/$(BENCH).py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
