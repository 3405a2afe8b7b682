# Two commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DEMO   ?= lab/demo.yaml

.PHONY: run test venv test-deps console browser secrets migrate demo lab-start lab-stop bench soak restart-under-load long-calls translations migration clean fuzz

$(BIN)/oml-server: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

venv: $(BIN)/oml-server

test-deps: venv console browser
	$(BIN)/pip install -q -e '.[test]'

# The agent console's phone library (JsSIP, pinned in console/package-lock.json) from the npm
# registry, bundled into console/dist/ and served by the server at /console-vendor/.
console: console/dist/jssip.min.js

console/dist/jssip.min.js: console/package.json console/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd console && npm ci --no-audit --no-fund && npm run build; \
	else echo "npm not found: the agent console (/agente/) has no phone (apt-get install npm)"; fi

# The browser the console tests drive (Debian's chromium; never a downloaded build). Root only.
browser:
	@if [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends chromium \
		|| echo "chromium not installed: the browser tests will be skipped"; fi

# Secrets are generated once into instance/secrets.env (mode 0600) and reused: the server
# refuses to start without real ones (README "Configuration").
SECRETS ?= instance/secrets.env
WITH_SECRETS = set -a && . $(abspath $(SECRETS)) && set +a &&

secrets: venv
	$(BIN)/oml-server secrets $(SECRETS)

migrate: secrets
	$(WITH_SECRETS) $(BIN)/oml-server db upgrade

demo: migrate
	$(WITH_SECRETS) $(BIN)/oml-server provision $(DEMO)

lab-start: secrets
	@if command -v asterisk >/dev/null 2>&1; then $(WITH_SECRETS) bash asterisk-config/lab.sh start; \
	else echo "lab Asterisk not installed (sudo bash asterisk-config/lab.sh install)"; fi

lab-stop:
	-bash asterisk-config/lab.sh stop

# Ctrl-C stops the server and the lab Asterisk it started (scripts/run.sh).
run: demo console
	BIN=$(BIN) HOST=$(HOST) PORT=$(PORT) SECRETS=$(SECRETS) bash scripts/run.sh

test: test-deps
	bash scripts/test.sh

# The long contract-fuzzing run (the short one is part of `make test`); FUZZ_EXAMPLES=300 per
# operation and mode by default. Prints requests tried, 5xx answers, schema violations.
fuzz: test-deps
	$(BIN)/python scripts/fuzz.py

bench: test-deps
	bash scripts/bench.sh

# 1,000 click-to-calls in a row through a private lab Asterisk: failures, leftovers, memory
# (CALLS=N to change; about 2 minutes).
soak: test-deps
	$(BIN)/python bench/soak_calls.py --calls $(or $(CALLS),1000)

# 20 clients write for a minute while the server restarts gracefully once: nothing lost
# (CLIENTS=N DURATION=S; SQLite, then PostgreSQL when one answers).
restart-under-load: test-deps
	$(BIN)/python bench/restart_under_load.py --clients $(or $(CLIENTS),20) --duration $(or $(DURATION),60)

# Click-to-call, inbound and agent-dialled calls held bridged and silent for 11 minutes (past the
# engine's 10-minute worker idle limit), then ended from each side (about 23 minutes). The suite
# does the same with a 3-second hold and a 2-second idle limit.
long-calls: test-deps
	OML_LONG_CALL_SECONDS=$(or $(SECONDS_HELD),660) OML_IT_IDLE_SECONDS=600 PHONE_RTP_TIMEOUT=0 \
		$(BIN)/python -m pytest -p no:cacheprovider -m integration -v tests/integration/test_long_calls.py

translations:
	$(BIN)/pybabel compile -d oml_server/translations

# Regenerate the single initial migration from the models (only while no release exists).
migration: venv
	bash scripts/regen-migration.sh

clean:
	rm -rf $(VENV) instance .pytest_cache
