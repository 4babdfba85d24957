#!/usr/bin/env bash
# `make up`: builds the images (offline-capable, see build-inputs.sh) and starts the stack, returning
# once every service is healthy. Creates a gitignored .env with a random WEBAPP_SECRET_KEY once.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/dotenv.sh
export "$(scripts/build-inputs.sh | tail -n1)"
docker compose up --build --wait "$@"

set -a && source .env && set +a
bind="${USERSTACK_BIND_ADDRESS:-127.0.0.1}"
[[ "$bind" == "0.0.0.0" ]] && bind=localhost
cat <<MSG

userstack is up and healthy (built on $BASE_IMAGE):
  browser:  http://$bind:${USERSTACK_HTTP_PORT:-8000}/      (API docs: /docs)
  grpcurl:  .venv/bin/grpcurl -plaintext $bind:${USERSTACK_GRPC_PORT:-50051} list
            .venv/bin/grpcurl -plaintext -d '{"username": "ada"}' $bind:${USERSTACK_GRPC_PORT:-50051} users.v1.UserService/CreateUser
  logs:     make logs      stop: make down (the database volume is kept)
MSG
