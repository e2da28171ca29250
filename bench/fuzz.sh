#!/usr/bin/env bash
# The parsers' property tests (spec/tests/fuzz.rs) with a million cases per property, optimised:
# app.toml as any text and as mutated manifests, request bodies as any bytes and as mutated
# bodies. Not part of the test command (which runs 20,000 per property); prints the time taken.
#
#   bench/fuzz.sh [CASES]        (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-1000000}
start=$(date +%s)
FAAS_FUZZ_CASES=$cases cargo test --release --locked -p faas-spec --test fuzz -- --test-threads 2
echo "fuzz: $cases cases per property, 4 properties, in $(( $(date +%s) - start )) s, no panic"
