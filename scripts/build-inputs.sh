#!/usr/bin/env bash
# Prepares what the image builds need and prints the base image to build on as `BASE_IMAGE=...`:
# the caller's BASE_IMAGE if set; else the official python image when present or pullable; else a
# local one built from Debian packages (scripts/base-image.sh). Also fills the wheelhouse, so that
# builds never need the network inside a container. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

official="python:3.11-slim-bookworm"
scripts/wheelhouse.sh
if [[ -z "${BASE_IMAGE:-}" ]]; then
  if docker image inspect "$official" >/dev/null 2>&1 \
    || timeout 120 docker pull --quiet "$official" >/dev/null 2>&1; then
    BASE_IMAGE="$official"
  else
    echo "no registry answers: building on a local base image" >&2
    BASE_IMAGE="${LOCAL_BASE_IMAGE:-local/python:3.11-bookworm}"
    LOCAL_BASE_IMAGE="$BASE_IMAGE" scripts/base-image.sh
  fi
fi
echo "BASE_IMAGE=$BASE_IMAGE"
