#!/bin/sh
# The entrypoint of the seeded postgres:15 image (scripts/lib.sh, faas_seed_postgres_image): the
# environment contract of the usual postgres image, so the platform's managed PostgreSQL works
# the same on either. On an empty PGDATA (default /var/lib/postgresql/data) it makes a cluster
# whose superuser is POSTGRES_USER (default postgres) with POSTGRES_PASSWORD (required unless
# POSTGRES_HOST_AUTH_METHOD=trust), given to initdb in a private file, never on a command line;
# POSTGRES_DB (default: the user's name) is created; POSTGRES_INITDB_ARGS go to initdb. The
# server listens on every address of the container, and other hosts log in by
# POSTGRES_HOST_AUTH_METHOD (default scram-sha-256). Runs as the postgres user.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA
if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user=${POSTGRES_USER:-postgres}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "error: the database is not initialised and no superuser password is given: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one)" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS are words for initdb
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
    ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  db=${POSTGRES_DB:-$user}
  if [ "$db" != postgres ]; then
    printf 'CREATE DATABASE "%s"\n' "$db" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
