#!/usr/bin/env bash
# Prepares this machine for faas's end-to-end tests: a Docker Engine that answers, the base images
# the templates name, PostgreSQL on loopback (two databases, the ledger's test shards), and an
# SMTP server on loopback that keeps what it receives (the billing notifications' tests).
# Idempotent; quick when all is already there. Called by scripts/test.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

faas_start_docker
faas_seed_images
faas_start_postgres faas_ledger_a faas_ledger_b >/dev/null
faas_start_smtp_sink >/dev/null
faas_say "ready: $(docker version --format 'Docker Engine {{.Server.Version}} (API {{.Server.APIVersion}})')"
