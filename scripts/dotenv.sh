#!/usr/bin/env bash
# Writes a random WEBAPP_SECRET_KEY into the gitignored .env once, so compose's defaults work
# (compose.yaml requires the variable: run by hand without it, compose fails loudly).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! grep -qs '^WEBAPP_SECRET_KEY=' .env; then
  echo "WEBAPP_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" >>.env
  echo "wrote a random WEBAPP_SECRET_KEY into .env" >&2
fi
