#!/usr/bin/env bash
# `make up`: builds the images (offline-capable, see build-inputs.sh) and starts the stack, returning
# once every service is healthy. Creates a gitignored .env with a random WEBAPP_SECRET_KEY once.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/dotenv.sh
export "$(scripts/build-inputs.sh | tail -n1)"
docker compose up --build --wait "$@"

# What compose used: the environment first, then .env, then compose.yaml's default.
setting() { local value="${!1:-$(sed -n "s/^$1=//p" .env | tail -n1)}"; echo "${value:-$2}"; }
bind="$(setting USERSTACK_BIND_ADDRESS 127.0.0.1)"
[[ "$bind" == "0.0.0.0" ]] && bind=localhost
http_port="$(setting USERSTACK_HTTP_PORT 8000)"
grpc_port="$(setting USERSTACK_GRPC_PORT 50051)"
cat <<MSG

userstack is up and healthy (built on $BASE_IMAGE):
  browser:  http://$bind:$http_port/      (API docs: /docs)
  grpcurl:  .venv/bin/grpcurl -plaintext $bind:$grpc_port list
            .venv/bin/grpcurl -plaintext -d '{"username": "ada"}' $bind:$grpc_port users.v1.UserService/CreateUser
  logs:     make logs      stop: make down (the database volume is kept)
MSG
