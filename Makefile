# recsys: the local stack and the checks. `make up`, `make test`, `make down`.
# Every target that needs .venv runs `install` first (idempotent, quick when nothing is missing).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
BUF := npx --yes @bufbuild/buf@1.75.0

.PHONY: help install proto proto-check lint up down status test bench

help:
	@echo "make up | down | status   start / stop / health of the local stack (logs: .stack/logs/)"
	@echo "make test                 install, lint, start the stack if needed, run every test"
	@echo "make install              install what is missing (apt, .venv, Kafka jars, grpcurl/ghz)"
	@echo "make proto | proto-check  regenerate / verify recsys/v1, envoy/recsys.pb, envoy/openapi.yaml and web/src/gen"
	@echo "make lint                 ruff + mypy + proto-check + buf lint + buf breaking (against main)"
	@echo "make bench                benchmarks (bench/; installs wrk, redis-tools, postgresql-client)"

install:
	@bash stack/install.sh

proto: install
	$(PY) scripts/gen_proto.py

proto-check: install
	$(PY) scripts/gen_proto.py --check

# buf needs the protos ours import: google/api/*.proto from the googleapis-common-protos wheel and
# buf/validate/validate.proto from protovalidate's Go module (scripts/gen_proto.py --deps; buf.yaml).
lint: install proto-check
	.venv/bin/ruff check .
	.venv/bin/mypy recsys recommender_svc profile_svc event_svc batch stack
	@$(PY) scripts/gen_proto.py --deps .stack/proto-deps
	$(BUF) lint
	BUF="$(BUF)" bash scripts/buf_breaking.sh

up: install
	$(PY) -m stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m stack down; else echo "no .venv: nothing to stop"; fi

status:
	$(PY) -m stack status

# Lint first (stale generated code or a lint error fails the run, as in CI); then the session
# fixtures in tests/conftest.py bring the stack up (or reuse a healthy one).
test: install lint
	$(PY) -m pytest -q

# Benchmarks print ratios against baselines measured in the same run. `make bench` runs every
# bench/*.py; one: `make bench BENCH=bench/serving.py`.
BENCH ?= $(wildcard bench/*.py)
bench: up
	$(PY) -m stack bench-tools
	@set -e; for b in $(BENCH); do echo "== $$b"; $(PY) $$b; done
