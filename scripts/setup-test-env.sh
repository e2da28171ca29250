#!/usr/bin/env bash
# Prepares this machine for faas's end-to-end tests: a Docker Engine that answers; the base images
# the templates name, and postgres:15 and redis:7 (the managed servers' images); PostgreSQL on
# loopback (the ledger's test shards; the databases' tests provision roles on it); Debian's
# redis-server (the databases' tests run their own on loopback); RabbitMQ on loopback (the
# databases' vhosts); an SMTP server on loopback that keeps what it receives (the billing
# notifications' tests); a container registry on loopback (the Kubernetes runtime's tests);
# and chromium with playwright-core (the dashboard's browser tests).
# Idempotent; quick when all is already there. Called by scripts/test.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

faas_start_docker
faas_seed_images
faas_seed_postgres_image
faas_seed_redis_image
faas_seed_rabbitmq_image
faas_seed_dbclient_image
faas_start_postgres faas_ledger_a faas_ledger_b >/dev/null
faas_start_smtp_sink >/dev/null
faas_apt_install redis-server
# Task workers in the tests are the python-action template's helper; over RabbitMQ it needs pika.
faas_apt_install python3-pika
faas_start_rabbitmq >/dev/null
# The Kubernetes runtime's tests push releases' images to a registry on loopback.
faas_start_registry >/dev/null
# The dashboard's browser tests: Debian's chromium, and playwright-core from its lockfile.
faas_apt_install chromium
command -v npm >/dev/null || faas_apt_install nodejs npm
if [ ! -d "$here/../tests/dashboard/node_modules/playwright-core" ]; then
  faas_say "installing playwright-core for the dashboard's browser tests (tests/dashboard)"
  (cd "$here/../tests/dashboard" && npm ci --no-audit --no-fund >/dev/null)
fi
faas_say "ready: $(docker version --format 'Docker Engine {{.Server.Version}} (API {{.Server.APIVersion}})')"
