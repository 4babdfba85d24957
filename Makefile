# userstack: the single entry point. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --locked
# What `make up` runs with: the stack group only (pyproject.toml), added to whatever .venv holds.
STACK_RUN := $(UV) run --locked --no-default-groups --group stack
PROTO_FILES := $(shell find protos -name '*.proto')
PROTO_STAMP := protos/users/v1/users_pb2.py

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

LOCK_INPUTS := uv.lock pyproject.toml protos/pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml clients/*/pyproject.toml

.venv/.synced: $(UV) $(LOCK_INPUTS)
	$(UV) sync --locked --all-packages
	@touch $@ .venv/.stack-synced

# `make up`'s share of the lock (the stack group), added without removing what `dev` installed.
.venv/.stack-synced: $(UV) $(LOCK_INPUTS)
	$(UV) sync --locked --inexact --no-default-groups --group stack
	@touch $@

.PHONY: dev
dev: .venv/.synced protos ## Set up the local environment (.venv from uv.lock, generated protos).

.PHONY: protos
protos: $(PROTO_STAMP) ## Compile protos/ into Python modules and typed stubs (not committed).

$(PROTO_STAMP): $(PROTO_FILES) protos/compile.sh .venv/.stack-synced
	$(STACK_RUN) protos/compile.sh --mypy_out=. --mypy_grpc_out=.

.PHONY: lint
lint: dev ## ruff (lint and format check) and mypy --strict.
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy libs/plumbing/src libs/plumbing/tests libs/testkit/src libs/testkit/tests services/users/src services/webapp/src services/users/tests services/webapp/tests clients/cli/src clients/cli/tests tests scripts

.PHONY: fmt
fmt: dev ## Format and autofix with ruff.
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: test
test: lint test-unit test-rules test-integration ## Everything CI runs: lint, types, unit and integration tests.

.PHONY: test-rules
test-rules: system-deps ## promtool: the Prometheus alert and recording rules against series that should and should not fire.
	promtool check rules deploy/prometheus/rules.yml
	promtool test rules deploy/prometheus/rules_test.yml

.PHONY: test-unit
test-unit: dev system-deps ## Service tests (real servers, SQLite files, a PostgreSQL server, Chromium), deploy/ checks.
	$(RUN) pytest libs/plumbing/tests libs/testkit/tests services/users/tests services/webapp/tests clients/cli/tests tests/deploy tests/scripts

# The dev loop's run: what `test` runs minus the tests marked slow (over a few seconds each),
# browser (Chromium) and docker (the compose stack); stops at the first failure.
QUICK_MARKERS := not slow and not browser and not docker

.PHONY: test-quick
test-quick: lint system-deps ## Lint and the fast unit tests (no slow, browser or Docker ones), stopping at the first failure.
	$(RUN) pytest libs/plumbing/tests libs/testkit/tests services/users/tests services/webapp/tests clients/cli/tests tests/deploy tests/scripts -m "$(QUICK_MARKERS)" -x -q

.PHONY: clean
clean: ## Remove the local environment and generated files.
	rm -rf .venv $(TOOLS) protos/users/v1/*_pb2*.py* protos/users/v1/*.binpb .mypy_cache .ruff_cache .pytest_cache

# --- running locally (no Docker) ---------------------------------------------------------------
.PHONY: run-users
run-users: dev ## Run the users service on 127.0.0.1:50051 (plaintext), its database in ./data (Ctrl-C drains); first admin from .env.
	scripts/dotenv.sh && set -a && source .env && set +a && USERS_ADMIN_USERNAME=$${USERS_ADMIN_USERNAME:-admin} USERS_LISTEN_ADDRESS=$${USERS_LISTEN_ADDRESS:-127.0.0.1:50051} USERS_DATABASE_URL=$${USERS_DATABASE_URL:-sqlite:///data/users.db} $(RUN) python -m users_service

.PHONY: run-webapp
run-webapp: dev ## Run the webapp on http://localhost:8000 against `make run-users`.
	scripts/dotenv.sh && set -a && source .env && set +a && $(RUN) python -m webapp

# USERSTACK_TARGET (default localhost:50051) and the certs/ of `make up` are found by the CLI itself.
.PHONY: seed
# `make seed` imports as USERSTACK_TOKEN, else make token's admin (make up), else as the account
# `userstack login` stored.
seed: .venv/.stack-synced protos ## Load 120 demo users (clients/cli/seed/users.ndjson) through `userstack import`, as the first admin; rerunning is harmless.
	token="$${USERSTACK_TOKEN:-$$($(STACK_RUN) python -m scripts.access_token 2>/dev/null || true)}"; \
	USERSTACK_TOKEN="$$token" $(STACK_RUN) userstack import clients/cli/seed/users.ndjson

.PHONY: bench
bench: dev system-deps ## The stack against its limits and peers (20 min here); bench/results/latest.{md,json}.
	$(RUN) python -m scripts.bench

.PHONY: bench-quick
bench-quick: dev system-deps ## The rows of `make bench`'s ratios with a bar, once, 1 s each (49 s here), same outputs.
	$(RUN) python -m scripts.bench --quick

# --- the stack (Docker Compose) ----------------------------------------------------------------
# compose.yaml requires WEBAPP_SECRET_KEY and compose.scale.yaml POSTGRES_PASSWORD and
# POSTGRES_APP_PASSWORD; the gitignored .env gets random ones once. down/logs/ps name both files, so they see either variant.
COMPOSE_ANY := docker compose -f compose.yaml -f compose.scale.yaml -f compose.observability.yaml
REPLICAS ?= 3

.PHONY: dotenv
dotenv:
	@scripts/dotenv.sh

.PHONY: system-deps
system-deps: .venv/.synced ## Host tools the tests need (the stack's, plus chromium, postgresql, wrk, h2load).
	scripts/system-deps.sh test

.PHONY: system-deps-run
system-deps-run: .venv/.stack-synced ## Host tools running the stack needs (compose plugin; debootstrap on Linux).
	scripts/system-deps.sh run

.PHONY: up
up: system-deps-run ## Build and start the stack; returns once every service is healthy.
	scripts/stack-up.sh

.PHONY: token
token: .venv/.stack-synced protos ## Print an admin access token for the running stack (TARGET=host:port for another replica).
	@$(STACK_RUN) python -m scripts.access_token $(if $(TARGET),--target $(TARGET))

.PHONY: up-scaled
up-scaled: system-deps-run ## The scaled variant: REPLICAS users replicas (default 3) on PostgreSQL.
	scripts/stack-up.sh --scaled $(REPLICAS)

.PHONY: up-observability
up-observability: system-deps-run ## The stack with metrics on and a Prometheus (UI http://localhost:9090); SCALED=N for N replicas.
	scripts/stack-up.sh --observability $(if $(SCALED),--scaled $(SCALED))

.PHONY: down
down: dotenv ## Stop the stack, either variant (the database volumes are kept).
	$(COMPOSE_ANY) down --remove-orphans

.PHONY: backup
backup: dotenv ## A consistent copy of the running stack's data (either variant) in backups/; prints its path.
	@python3 scripts/backup.py backup

.PHONY: restore
restore: dotenv ## Restore FILE=backups/... into the stopped stack (either variant); then `make up`.
	@test -n "$(FILE)" || { echo "usage: make restore FILE=backups/<file>" >&2; exit 2; }
	@python3 scripts/backup.py restore "$(FILE)"

.PHONY: base-image
base-image: system-deps-run ## Build local/python:3.11-bookworm from Debian packages (engines with no registry; PLATFORM=...).
	scripts/base-image.sh

.PHONY: wheelhouse
wheelhouse: .venv/.synced ## Download the images' wheels for the engine's CPU (or PLATFORM's) into wheelhouse/.
	python3 scripts/wheelhouse.py

.PHONY: images
images: system-deps-run ## Build both images (userstack/{users,webapp}:dev); PLATFORM=linux/arm64: emulated, :dev-arm64.
	scripts/images.sh

.PHONY: logs
logs: dotenv ## Follow the stack's logs.
	$(COMPOSE_ANY) logs -f

.PHONY: ps
ps: dotenv ## Show the stack's services and their health.
	$(COMPOSE_ANY) ps

# --- Kubernetes (deploy/README.md) -------------------------------------------------------------
OVERLAY ?= postgres

.PHONY: k8s-render
k8s-render: dev ## Print deploy/overlays/$(OVERLAY) rendered (OVERLAY=postgres or sqlite).
	@$(RUN) kubectl kustomize deploy/overlays/$(OVERLAY)

.PHONY: k8s-secrets
k8s-secrets: dev ## Create the Secrets deploy/overlays/$(OVERLAY) needs, random, in the current cluster (once).
	kubectl apply -f deploy/base/namespace.yaml
	$(RUN) python scripts/k8s_secrets.py $(OVERLAY) | kubectl create -f -

# Not in `test`: the emulated build takes many minutes on x86-64 (docs/platforms.md).
.PHONY: test-arm64
test-arm64: dev ## arm64 under qemu: build both images for linux/arm64 (:dev-arm64), run the users one.
	scripts/system-deps.sh arm64
	$(RUN) pytest tests/arm64

.PHONY: test-integration
test-integration: dev system-deps ## Spin the stack up with testcontainers and test it from outside.
	$(RUN) pytest tests/integration
