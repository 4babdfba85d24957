#!/usr/bin/env bash
# Builds local/python:3.11-bookworm from Debian packages (debootstrap) for engines that cannot pull
# the official python image. Skips the build when the image already exists.
# PLATFORM (linux/amd64 or linux/arm64; default: the engine's own) picks the architecture: another
# one needs qemu-user-static + binfmt on the host (docs/platforms.md); its image is tagged
# local/python:3.11-bookworm-<arch> unless LOCAL_BASE_IMAGE names it.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="linux/$(docker version --format '{{.Server.Arch}}')"
platform="${PLATFORM:-$engine}"
arch="${platform#linux/}"
case "$arch" in amd64 | arm64) ;; *) echo "error: PLATFORM=$platform: linux/amd64 or linux/arm64" >&2; exit 2 ;; esac
default_image="local/python:3.11-bookworm"
[[ "$platform" == "$engine" ]] || default_image+="-$arch"
image="${LOCAL_BASE_IMAGE:-$default_image}"
mirror="${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}"
mirror="${mirror:-http://deb.debian.org/debian}"

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null || { echo "error: debootstrap is missing (make system-deps)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "building $image for $platform from $mirror (debootstrap, about a minute natively)" >&2
start=$SECONDS
# passwd: useradd for the images' non-root user; tini: a tiny init for those who want one.
# Another architecture's second stage runs its binaries under qemu (binfmt), several times slower.
debootstrap --arch="$arch" --variant=minbase --include=python3,python3-venv,ca-certificates,passwd,tini \
  bookworm "$work/rootfs" "$mirror" >/dev/null
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
rm -rf "$work/rootfs"
# FROM scratch with --platform, not `docker import`: import ignores --platform on Docker 20.10 (the
# image would say amd64 whatever its binaries are). ENV and CMD as the official image has them.
cat >"$work/Dockerfile" <<'DOCKERFILE'
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
CMD ["python3"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build --quiet --platform "$platform" -t "$image" "$work" >/dev/null
echo "built $image ($platform) in $((SECONDS - start)) s" >&2
