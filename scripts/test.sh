#!/usr/bin/env bash
# The test command: prepares the machine (Docker Engine, seeded base images, a Kubernetes
# cluster), then runs every
# test: the workspace's cargo tests, the python-function runtime's and python-action helper's tests, the API contract test
# (schemathesis) and the end-to-end test of a new user's first steps.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/setup-test-env.sh"
# A real Kubernetes 1.20 on loopback for the Kubernetes runtime's tests (built once per machine).
"$root/scripts/setup-kubernetes.sh" start

echo "== cargo test"
cargo test --workspace --locked

echo "== python-function runtime tests"
(cd templates/python-function && python3 -m unittest discover -s tests -t . 2>&1)

echo "== python-action helper tests"
(cd templates/python-action && python3 -m unittest discover -s tests -t . 2>&1)

echo "== the API as a contract (schemathesis against a fresh daemon)"
"$root/tests/api-contract/run.sh"

echo "== the dashboard in a real browser (chromium, playwright-core)"
"$root/tests/dashboard/run.sh"

echo "== end-to-end: a new user's first steps"
"$root/tests/e2e/new-user.sh"
