#!/usr/bin/env bash
# Removes what a platform left on the Docker Engine: its instances, its one-off runs, its
# managed database servers and their volumes. For the tests' throwaway platforms.
#   scripts/remove-platform.sh PLATFORM_ID
set -uo pipefail
id=${1:?the platform id}
for label in io.faas.platform io.faas.run.platform io.faas.server.platform; do
  ids=$(docker ps -aq --filter "label=$label=$id")
  # shellcheck disable=SC2086 # one word per container id
  [ -n "$ids" ] && docker rm -f -v $ids >/dev/null 2>&1
done
for engine in postgresql redis rabbitmq; do
  docker volume rm -f "faas-${id:0:12}-$engine" >/dev/null 2>&1
done
exit 0
