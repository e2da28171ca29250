#!/bin/sh
# The entrypoint of the seeded redis:7 image (scripts/lib.sh, faas_seed_redis_image), as the usual
# redis image behaves: arguments that start with `-` or name a `.conf` file are given to
# redis-server; the server runs as the redis user in /data (the volume), listening on every
# address of the container with protected mode off (the usual image's built-in defaults; here
# a defaults file that a given .conf file, included after it, may override). Whoever runs it is
# expected to give it users and passwords (an `aclfile`).
set -eu
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  mkdir -p /data && chown -R redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$1" = redis-server ]; then
  shift
  defaults=$(mktemp)
  printf 'bind * -::*\nprotected-mode no\ndir /data\n' >"$defaults"
  if [ $# -gt 0 ] && [ "${1%.conf}" != "$1" ]; then
    printf 'include %s\n' "$1" >>"$defaults"
    shift
  fi
  exec redis-server "$defaults" "$@"
fi
exec "$@"
