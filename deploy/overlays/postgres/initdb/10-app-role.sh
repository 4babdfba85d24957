#!/bin/sh
# First start only (/docker-entrypoint-initdb.d): the users service's own role, POSTGRES_APP_USER
# with POSTGRES_APP_PASSWORD. It owns POSTGRES_DB, and so its public schema (owned by
# pg_database_owner since PostgreSQL 15): it creates and migrates its tables there, and can do
# nothing a superuser can. POSTGRES_USER stays the superuser, for operators, never the service.
# Then TCP without TLS is refused outright (hostnossl ... reject, read when the server starts for
# real): no password ever crosses the network in the clear, whatever a client's sslmode.
# The official image runs (or sources) this file; deploy/images/postgres/entrypoint.sh does too.
: "${POSTGRES_APP_USER:?POSTGRES_APP_USER is required}"
: "${POSTGRES_APP_PASSWORD:?POSTGRES_APP_PASSWORD is required}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  --set app="$POSTGRES_APP_USER" --set password="$POSTGRES_APP_PASSWORD" \
  --set db="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" <<'SQL'
CREATE ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'password';
ALTER DATABASE :"db" OWNER TO :"app";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
sed -i '1i hostnossl all all all reject' "$PGDATA/pg_hba.conf"
