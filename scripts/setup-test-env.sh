#!/usr/bin/env bash
# Prepares this machine for faas's end-to-end tests: a Docker Engine that answers and the base images
# the templates name. Idempotent; quick when all is already there. Called by scripts/test.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

faas_start_docker
faas_seed_images
faas_say "ready: $(docker version --format 'Docker Engine {{.Server.Version}} (API {{.Server.APIVersion}})')"
