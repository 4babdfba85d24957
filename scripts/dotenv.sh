#!/usr/bin/env bash
# Writes random secrets into the gitignored .env once, so compose's defaults work: WEBAPP_SECRET_KEY
# and USERS_ADMIN_PASSWORD (the first admin's, docs/access.md; compose.yaml requires both),
# POSTGRES_PASSWORD and POSTGRES_APP_PASSWORD (compose.scale.yaml's).
# Run by hand without them, compose fails loudly. All are URL-safe (the password goes into a database URL).
set -euo pipefail
cd "$(dirname "$0")/.."

for name in WEBAPP_SECRET_KEY USERS_ADMIN_PASSWORD POSTGRES_PASSWORD POSTGRES_APP_PASSWORD; do
  if ! grep -qs "^$name=" .env; then
    echo "$name=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" >>.env
    echo "wrote a random $name into .env" >&2
  fi
done
