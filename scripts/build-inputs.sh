#!/usr/bin/env bash
# Prepares what the image builds need and prints the base image to build on as `BASE_IMAGE=...`.
# PLATFORM (default: the engine's own, asked of the engine) is the architecture to build for.
# - A registry answers (the official python image pulls): the base is that image, and the builds
#   install from the package index (the wheelhouse is emptied; USERSTACK_WHEELHOUSE=always keeps
#   and fills it, for engines that pull images but reach no index from inside a build).
# - None answers (air-gapped): the official image if present, else a local one built from Debian
#   packages (scripts/base-image.sh); the builds install offline from wheels downloaded on the host
#   for PLATFORM's architecture (scripts/wheelhouse.py).
# The caller's BASE_IMAGE wins over both. Runs with macOS's own tools (no GNU timeout or
# sha256sum). Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

official="python:3.11-slim-bookworm"
engine="linux/$(docker version --format '{{.Server.Arch}}')"
export PLATFORM="${PLATFORM:-$engine}"

# A pull of an image already present is a quick manifest check: it proves the registry answers.
registry=no
if python3 scripts/bounded.py 120 docker pull --quiet --platform "$PLATFORM" "$official" >/dev/null 2>&1; then
  registry=yes
fi

if [[ "$registry" == yes && "${USERSTACK_WHEELHOUSE:-auto}" != always ]]; then
  python3 scripts/wheelhouse.py --clear
else
  python3 scripts/wheelhouse.py
fi
if [[ -z "${BASE_IMAGE:-}" ]]; then
  if [[ "$registry" == yes ]] || { [[ "$PLATFORM" == "$engine" ]] && docker image inspect "$official" >/dev/null 2>&1; }; then
    BASE_IMAGE="$official"
  else
    echo "no registry answers: building on a local base image ($PLATFORM)" >&2
    suffix=""
    [[ "$PLATFORM" == "$engine" ]] || suffix="-${PLATFORM#linux/}"
    BASE_IMAGE="${LOCAL_BASE_IMAGE:-local/python:3.11-bookworm$suffix}"
    LOCAL_BASE_IMAGE="$BASE_IMAGE" scripts/base-image.sh
  fi
fi
echo "BASE_IMAGE=$BASE_IMAGE"
