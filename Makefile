# Two commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DEMO   ?= lab/demo.yaml

.PHONY: run test venv test-deps migrate demo lab-start lab-stop bench translations migration clean

$(BIN)/oml-server: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

venv: $(BIN)/oml-server

test-deps: venv
	$(BIN)/pip install -q -e '.[test]'

migrate: venv
	$(BIN)/oml-server db upgrade

demo: migrate
	$(BIN)/oml-server provision $(DEMO)

lab-start:
	@if command -v asterisk >/dev/null 2>&1; then bash asterisk-config/lab.sh start; \
	else echo "lab Asterisk not installed (sudo bash asterisk-config/lab.sh install): serving without calls"; fi

lab-stop:
	-bash asterisk-config/lab.sh stop

run: demo lab-start
	$(BIN)/oml-server run --host $(HOST) --port $(PORT)

test: test-deps
	bash scripts/test.sh

bench: test-deps
	bash scripts/bench.sh

translations:
	$(BIN)/pybabel compile -d oml_server/translations

# Regenerate the single initial migration from the models (only while no release exists).
migration: venv
	bash scripts/regen-migration.sh

clean:
	rm -rf $(VENV) instance .pytest_cache
