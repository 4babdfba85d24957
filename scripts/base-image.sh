#!/usr/bin/env bash
# Builds local/python:3.11-bookworm from Debian packages (debootstrap + docker import) for engines
# that cannot pull the official python image. Skips the build when the image already exists.
set -euo pipefail

image="${LOCAL_BASE_IMAGE:-local/python:3.11-bookworm}"
mirror="${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}"
mirror="${mirror:-http://deb.debian.org/debian}"

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null || { echo "error: debootstrap is missing (make system-deps)" >&2; exit 1; }

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
echo "building $image from $mirror (debootstrap, about a minute)" >&2
start=$SECONDS
# passwd: useradd for the images' non-root user; tini: a tiny init for those who want one.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd,tini \
  bookworm "$rootfs" "$mirror" >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# docker import drops ENV and CMD: set them again, as the official image does.
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$image" >/dev/null
echo "built $image in $((SECONDS - start)) s" >&2
