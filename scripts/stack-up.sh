#!/usr/bin/env bash
# `make up`: builds the images (offline-capable, see build-inputs.sh) and starts the stack, returning
# once every service is healthy. `--scaled N` (make up-scaled): the compose.scale.yaml variant, N
# users replicas on PostgreSQL. Creates a gitignored .env with random secrets once (dotenv.sh).
# Other arguments go to `docker compose up`.
set -euo pipefail
cd "$(dirname "$0")/.."

observability=""
if [[ "${1:-}" == "--observability" ]]; then  # make up-observability: compose.observability.yaml
  observability=1
  shift
fi
replicas=""
if [[ "${1:-}" == "--scaled" ]]; then
  replicas="${2:?--scaled needs a replica count}"
  [[ "$replicas" =~ ^[1-9][0-9]*$ ]] || { echo "error: --scaled $replicas: not a count" >&2; exit 2; }
  shift 2
fi

scripts/dotenv.sh
# The development CA and certificates (kept while current; keys readable by the containers' uid).
.tools/bin/uv run --locked --no-default-groups --group stack python -m scripts.certs --uid 10001
export "$(scripts/build-inputs.sh | tail -n1)"
compose=(docker compose -f compose.yaml)
if [[ -n "$replicas" ]]; then
  export "$(scripts/postgres-image.sh | tail -n1)"
  compose+=(-f compose.scale.yaml)
  set -- --scale "users=$replicas" "$@"
fi
[[ -n "$observability" ]] && compose+=(-f compose.observability.yaml)
"${compose[@]}" up --build --wait --remove-orphans "$@"

# What compose used: the environment first, then .env, then compose.yaml's default.
setting() { local value="${!1:-$(sed -n "s/^$1=//p" .env | tail -n1)}"; echo "${value:-$2}"; }
bind="$(setting USERSTACK_BIND_ADDRESS 127.0.0.1)"
[[ "$bind" == "0.0.0.0" ]] && bind=localhost
http_port="$(setting USERSTACK_HTTP_PORT 8000)"
if [[ -n "$replicas" ]]; then
  grpc="$("${compose[@]}" port --index 1 users 50051)"
  grpc="${grpc/0.0.0.0/localhost}"
  variant="$replicas users replicas on PostgreSQL ($POSTGRES_IMAGE), each on its own port:
            make ps, or: docker compose -f compose.yaml -f compose.scale.yaml port --index N users 50051"
else
  grpc="$bind:$(setting USERSTACK_GRPC_PORT 50051)"
  variant="one users replica on SQLite"
fi
cat <<MSG

userstack is up and healthy (built on $BASE_IMAGE):
  stack:    $variant
  browser:  http://$bind:$http_port/      (API docs: /docs)
  sign in:  as $(setting USERS_ADMIN_USERNAME admin), with the password USERS_ADMIN_PASSWORD in .env (browser, or
            AuthService/SignIn); an admin token for grpcurl and curl: make -s token
  grpcurl:  TOKEN=\$(make -s token TARGET=$grpc)
            .venv/bin/grpcurl -cacert certs/ca.pem -cert certs/client.pem -key certs/client.key \
              -H "authorization: Bearer \$TOKEN" $grpc list
            .venv/bin/grpcurl -cacert certs/ca.pem -cert certs/client.pem -key certs/client.key \
              -H "authorization: Bearer \$TOKEN" -d '{"username": "ada"}' $grpc users.v1.UserService/CreateUser
  logs:     make logs      stop: make down (the database volumes are kept)
MSG
if [[ -n "$observability" ]]; then
  echo "  metrics:  Prometheus UI http://$bind:$(setting USERSTACK_PROMETHEUS_PORT 9090)/ (targets: /targets, alerts: /alerts)"
fi
