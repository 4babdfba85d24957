#!/usr/bin/env bash
# `make images`: builds both images from the one Dockerfile, not started. For the engine's own
# architecture through compose (userstack/users:dev, userstack/webapp:dev). PLATFORM=linux/arm64
# (or amd64) on an engine of another one: the classic builder's --platform, RUN steps under qemu
# (docs/platforms.md), tagged :dev-<arch> (USERSTACK_TAG overrides) so that the emulated images
# never replace the native ones.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="linux/$(docker version --format '{{.Server.Arch}}')"
export PLATFORM="${PLATFORM:-$engine}"
export "$(scripts/build-inputs.sh | tail -n1)"
if [[ "$PLATFORM" == "$engine" ]]; then
  # compose.yaml requires these secrets (scripts/dotenv.sh); a build never reads them.
  WEBAPP_SECRET_KEY="${WEBAPP_SECRET_KEY:-builds-never-read-it}" \
    USERS_ADMIN_PASSWORD="${USERS_ADMIN_PASSWORD:-builds-never-read-it}" exec docker compose build
fi

tag="${USERSTACK_TAG:-dev-${PLATFORM#linux/}}"
for service in users webapp; do
  start=$SECONDS
  DOCKER_BUILDKIT=0 docker build --quiet --platform "$PLATFORM" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "SERVICE=$service" --target "$service" -t "userstack/$service:$tag" . >/dev/null
  echo "built userstack/$service:$tag ($PLATFORM, on $BASE_IMAGE) in $((SECONDS - start)) s" >&2
done
