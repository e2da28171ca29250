#!/bin/sh
# The entrypoint of the seeded rabbitmq:3-management image (scripts/lib.sh,
# faas_seed_rabbitmq_image), as the usual image behaves: `rabbitmq-server` runs as the rabbitmq
# user with its data in /var/lib/rabbitmq (the volume), AMQP on 5672 and the management API on
# 15672 on every address of the container; on a new node RABBITMQ_DEFAULT_USER and
# RABBITMQ_DEFAULT_PASS name the first administrator (written to a config file readable by the
# rabbitmq user alone, never on a command line). Give the container a fixed host name: the
# node's data is kept under it.
set -eu
if [ "${1:-}" != rabbitmq-server ]; then
  exec "$@"
fi
export HOME=/var/lib/rabbitmq
if [ "$(id -u)" = 0 ]; then
  mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
  conf=/etc/rabbitmq/rabbitmq.conf
  {
    printf 'listeners.tcp.default = 5672\nmanagement.tcp.port = 15672\nloopback_users.guest = false\n'
    if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then printf 'default_user = %s\n' "$RABBITMQ_DEFAULT_USER"; fi
    if [ -n "${RABBITMQ_DEFAULT_PASS:-}" ]; then printf 'default_pass = %s\n' "$RABBITMQ_DEFAULT_PASS"; fi
  } >"$conf"
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq /etc/rabbitmq
  chmod 600 "$conf"
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" "$@"
fi
exec /usr/lib/rabbitmq/bin/rabbitmq-server
