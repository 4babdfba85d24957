#!/usr/bin/env bash
# Downloads, on the host, every wheel the image builds need (runtime deps of both services, the
# protos group, the build tools) for Linux x86_64 / CPython 3.11 into wheelhouse/, so that builds
# inside containers (where HTTPS fails on our CI machines) install with --no-index.
# Skips the download when uv.lock and build-tools.txt have not changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=wheelhouse
stamp="$dir/.inputs.sha256"
inputs="$(cat uv.lock "$dir/build-tools.txt" | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$inputs" ]]; then
  exit 0
fi

start=$SECONDS
rm -f "$dir"/*.whl "$stamp"
requirements="$(mktemp)"
trap 'rm -f "$requirements"' EXIT
.tools/bin/uv export --quiet --locked --all-packages --no-dev --group protos --no-emit-workspace \
  -o "$requirements"

# pip 23 does not widen a manylinux tag to older ones: name every glibc up to bookworm's 2.36.
platforms=(--platform manylinux2014_x86_64)
for minor in $(seq 5 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
download() {
  .tools/bin/pip download --isolated --quiet --disable-pip-version-check --only-binary=:all: \
    "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311 --dest "$dir" "$@"
}
download --require-hashes -r "$requirements"
download -r "$dir/build-tools.txt"
echo "$inputs" >"$stamp"
echo "wheelhouse: $(ls "$dir"/*.whl | wc -l) wheels, $(du -sh "$dir" | cut -f1), $((SECONDS - start)) s" >&2
