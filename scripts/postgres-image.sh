#!/usr/bin/env bash
# Prints the PostgreSQL image for compose.scale.yaml as `POSTGRES_IMAGE=...`: the caller's
# POSTGRES_IMAGE if set; else the official postgres:15-bookworm when present or pullable; else
# local/postgres:15-bookworm-<hash of deploy/images/postgres>, built once per version of that
# folder from Debian's postgresql-15 on BASE_IMAGE (a Debian bookworm image: scripts/build-inputs.sh
# picks one), so a changed entrypoint is never served by a stale image. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

official="postgres:15-bookworm"
# sha256 in Python: macOS ships no sha256sum.
context_hash="$(cat deploy/images/postgres/* \
  | python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:12])')"
local_image="${LOCAL_POSTGRES_IMAGE:-local/postgres:15-bookworm-$context_hash}"
if [[ -z "${POSTGRES_IMAGE:-}" ]]; then
  if docker image inspect "$official" >/dev/null 2>&1 \
    || python3 scripts/bounded.py 120 docker pull --quiet "$official" >/dev/null 2>&1; then
    POSTGRES_IMAGE="$official"
  else
    POSTGRES_IMAGE="$local_image"
    if ! docker image inspect "$POSTGRES_IMAGE" >/dev/null 2>&1; then
      : "${BASE_IMAGE:?BASE_IMAGE (a Debian bookworm image) is needed to build $POSTGRES_IMAGE}"
      echo "no registry answers: building $POSTGRES_IMAGE from Debian packages on $BASE_IMAGE" >&2
      start=$SECONDS
      docker build --quiet --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$POSTGRES_IMAGE" \
        deploy/images/postgres >/dev/null
      echo "built $POSTGRES_IMAGE in $((SECONDS - start)) s" >&2
    fi
  fi
fi
echo "POSTGRES_IMAGE=$POSTGRES_IMAGE"
