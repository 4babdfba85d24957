#!/bin/sh
# First start: initdb with POSTGRES_USER (default postgres) and POSTGRES_PASSWORD (required),
# create POSTGRES_DB (default: the user's name), run /docker-entrypoint-initdb.d/*.sh against a
# socket-only server, as the official image does; then run the server, listening on all addresses.
# Local socket connections (inside the container only) are trusted; TCP needs scram-sha-256.
set -eu

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "error: POSTGRES_PASSWORD is required to initialise the database" >&2
    exit 1
  fi
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  echo "initialising $PGDATA for user $user, database $db" >&2
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" --encoding=UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\";" \
      | postgres --single -j -D "$PGDATA" postgres >/dev/null
  fi
  # The official image sources each script (they read POSTGRES_* from here); so do we, against
  # a server on the socket only, started for them.
  for script in /docker-entrypoint-initdb.d/*.sh; do
    [ -e "$script" ] || continue
    if [ -z "${started:-}" ]; then
      pg_ctl --pgdata="$PGDATA" --wait --silent --options="-c listen_addresses=''" start >/dev/null
      started=1
    fi
    echo "running $script" >&2
    . "$script"
  done
  if [ -n "${started:-}" ]; then
    pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop >/dev/null
  fi
fi

if [ "${1:-}" = postgres ]; then
  shift
  exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
