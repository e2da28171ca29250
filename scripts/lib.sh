# Shared helpers for faas's shell scripts (sourced, not run).
# Every function here is idempotent: it checks before it changes anything.

faas_say() { printf 'faas-setup: %s\n' "$*" >&2; }

# True when a Docker Engine answers.
faas_docker_answers() { docker info >/dev/null 2>&1; }

# Poll `docker info` until it answers or the deadline (seconds) passes.
faas_wait_for_docker() {
  local deadline=$(( $(date +%s) + ${1:-60} ))
  until faas_docker_answers; do
    if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
    sleep 0.5
  done
}

faas_is_debian_like() {
  [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release
}

faas_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    faas_say "need root for: $*"; return 1; fi
}

faas_apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  faas_say "installing ${missing[*]} from the distribution's packages"
  if [ -z "${FAAS_APT_UPDATED:-}" ]; then
    faas_as_root apt-get update -qq >/dev/null || return 1
    FAAS_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive faas_as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Start a Docker Engine when none answers: through systemd where it runs, otherwise dockerd in
# the background with its log beside its data.
faas_start_docker() {
  faas_docker_answers && return 0
  if ! command -v dockerd >/dev/null 2>&1; then
    faas_is_debian_like || { faas_say "no Docker Engine here: install one (https://docs.docker.com/engine/install/) and run this again"; return 1; }
    faas_apt_install docker.io || return 1
  fi
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    faas_as_root systemctl start docker || true
  fi
  if ! faas_wait_for_docker 3; then
    faas_say "starting dockerd in the background (log: /var/log/faas-dockerd.log)"
    faas_as_root sh -c 'nohup dockerd >/var/log/faas-dockerd.log 2>&1 &'
  fi
  faas_wait_for_docker 90 || { faas_say "dockerd did not answer within 90 s; see /var/log/faas-dockerd.log"; return 1; }
}

# The Debian mirror this host already uses (read from apt's own configuration, so no host is
# written into this project).
faas_debian_mirror() {
  local uri=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  printf '%s\n' "$uri"
}

# Seeded images carry the label io.faas.seed with this version; bump it when a recipe below
# changes, and images seeded by an older recipe are seeded again. An image pulled from a
# registry (it has a repo digest) is kept as it is.
FAAS_SEED_VERSION=2

faas_image_present() {
  local facts
  facts=$(docker image inspect -f '{{len .RepoDigests}} {{index .Config.Labels "io.faas.seed"}}' "$1" 2>/dev/null) || return 1
  case "$facts" in
    "0 $FAAS_SEED_VERSION") return 0 ;;
    0\ *) return 1 ;;
    *) return 0 ;;
  esac
}

# Try the image registry first (FAAS_TRY_PULL=1): a connected host gets the real images; an
# air-gapped one fails fast and falls back to seeding from the local distribution.
faas_try_pull() {
  [ "${FAAS_TRY_PULL:-0}" = 1 ] || return 1
  timeout 30 docker pull -q "$1" >/dev/null 2>&1
}

# Seed the base images the templates name, from the local distribution, when they are absent.
# Images: busybox (static), debian:bookworm-slim (minbase), python:3.11-slim (minbase + python3).
faas_seed_images() {
  local cache=${FAAS_SEED_CACHE:-/var/cache/faas-seed}
  local want_debian="debian:bookworm-slim" want_python="python:3.11-slim python:3.11 python:3-slim"
  local want_busybox="busybox:latest busybox:stable"

  local need_busybox=0 need_debian=0 need_python=0 t
  for t in $want_busybox; do faas_image_present "$t" || faas_try_pull "$t" || need_busybox=1; done
  for t in $want_debian; do faas_image_present "$t" || faas_try_pull "$t" || need_debian=1; done
  for t in $want_python; do faas_image_present "$t" || faas_try_pull "$t" || need_python=1; done
  [ $need_busybox$need_debian$need_python = 000 ] && return 0

  if [ $need_busybox = 1 ]; then
    faas_apt_install busybox-static || return 1
    local bb; bb=$(mktemp -d)
    mkdir -p "$bb/bin" "$bb/etc" "$bb/tmp" "$bb/www"
    cp /bin/busybox "$bb/bin/busybox"
    (cd "$bb/bin" && for a in $(./busybox --list); do [ -e "$a" ] || ln -s busybox "$a"; done)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$bb/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$bb/etc/group"
    chmod 1777 "$bb/tmp"
    local id; id=$(tar -C "$bb" -c . | docker import -c 'CMD ["sh"]' -c "LABEL io.faas.seed=$FAAS_SEED_VERSION" - busybox:latest) || return 1
    docker tag busybox:latest busybox:stable
    rm -rf "$bb"
    faas_say "seeded busybox:latest, busybox:stable ($id)"
  fi

  if [ $need_debian = 1 ] || [ $need_python = 1 ]; then
    faas_apt_install debootstrap || return 1
    local root="$cache/bookworm-minbase"
    if [ ! -x "$root/usr/bin/apt-get" ]; then
      local mirror; mirror=$(faas_debian_mirror)
      [ -n "$mirror" ] || { faas_say "no Debian mirror found in apt's sources; cannot seed images"; return 1; }
      faas_say "building a minimal Debian root with debootstrap (about 30 s)"
      faas_as_root rm -rf "$root"
      mkdir -p "$cache"
      faas_as_root debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { faas_say "debootstrap failed; see $cache/debootstrap.log"; return 1; }
      faas_as_root rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
    fi
    if [ $need_debian = 1 ]; then
      tar -C "$root" -c . | docker import -c 'CMD ["bash"]' -c "LABEL io.faas.seed=$FAAS_SEED_VERSION" - debian:bookworm-slim >/dev/null || return 1
      faas_say "seeded debian:bookworm-slim"
    fi
    if [ $need_python = 1 ]; then
      local proot
      proot=$(faas_seed_root python /usr/bin/python3 "python3 python3-venv python3-pip ca-certificates") || return 1
      # The ca-certificates package wrote its own bundle; the proxy's CA must be in it.
      [ -r /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$proot/etc/ssl/certs/ca-certificates.crt"
      ln -sf python3 "$proot/usr/bin/python" 2>/dev/null || true
      tar -C "$proot" -c . | docker import -c 'CMD ["python3"]' -c "LABEL io.faas.seed=$FAAS_SEED_VERSION" - python:3.11-slim >/dev/null || return 1
      docker tag python:3.11-slim python:3.11
      docker tag python:3.11-slim python:3-slim
      faas_say "seeded python:3.11-slim, python:3.11, python:3-slim"
    fi
  fi
}

# A copy of the minimal Debian root (faas_seed_images builds it) with Debian's PACKAGES installed,
# at $cache/bookworm-NAME, made once (reused while CHECK exists in it). PREPARE, if given, runs in
# the copy before the install. The host's CA bundle goes in, since the copy reaches the
# registries only through the host's TLS proxy; no service starts in the chroot. Prints its path.
faas_seed_root() {
  local name=$1 check=$2 packages=$3 prepare=${4:-true}
  local cache=${FAAS_SEED_CACHE:-/var/cache/faas-seed}
  local root="$cache/bookworm-minbase" dest="$cache/bookworm-$name"
  [ -x "$root/usr/bin/apt-get" ] || { faas_say "no minimal Debian root to seed $name from"; return 1; }
  if [ ! -e "$dest$check" ]; then
    faas_say "installing $packages into a copy of the minimal Debian root"
    faas_as_root rm -rf "$dest"
    faas_as_root cp -a "$root" "$dest"
    [ -r /etc/ssl/certs/ca-certificates.crt ] && mkdir -p "$dest/etc/ssl/certs" \
      && cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/ca-certificates.crt"
    cp /etc/resolv.conf "$dest/etc/resolv.conf" 2>/dev/null || true
    printf '#!/bin/sh\nexit 101\n' >"$dest/usr/sbin/policy-rc.d" && chmod +x "$dest/usr/sbin/policy-rc.d"
    faas_as_root chroot "$dest" sh -c "$prepare && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*" \
      >"$cache/$name-chroot.log" 2>&1 || { faas_say "installing $packages into the seed root failed; see $cache/$name-chroot.log"; return 1; }
    rm -f "$dest/usr/sbin/policy-rc.d"
  fi
  printf '%s\n' "$dest"
}

# postgres:15 for the platform's managed PostgreSQL where no registry answers: Debian's
# postgresql-15 in the minimal root that faas_seed_images builds, with the usual image's
# environment contract (scripts/postgres-entrypoint.sh), its volume and port (docker import takes
# no STOPSIGNAL: whoever runs it should stop it with SIGINT, a fast shutdown).
# Idempotent: reused when present.
faas_seed_postgres_image() {
  faas_image_present postgres:15 || faas_try_pull postgres:15 && return 0
  local proot
  # No cluster made by the package: the entrypoint makes one on the volume.
  proot=$(faas_seed_root postgres /usr/lib/postgresql/15/bin/postgres postgresql-15 \
    'mkdir -p /etc/postgresql-common && echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf') || return 1
  install -m 0755 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/postgres-entrypoint.sh" \
    "$proot/usr/local/bin/docker-entrypoint.sh" || return 1
  tar -C "$proot" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV PGDATA=/var/lib/postgresql/data' -c 'ENV PG_MAJOR=15' -c 'VOLUME /var/lib/postgresql/data' \
    -c 'EXPOSE 5432' -c 'ENTRYPOINT ["docker-entrypoint.sh"]' -c 'CMD ["postgres"]' \
    -c "LABEL io.faas.seed=$FAAS_SEED_VERSION" - postgres:15 >/dev/null || return 1
  faas_say "seeded postgres:15"
}

# redis:7 for the platform's managed Redis where no registry answers: Debian's redis-server in
# the minimal root, with the usual image's behaviour (scripts/redis-entrypoint.sh), /data as its
# volume and working directory, port 6379. Idempotent: reused when present.
faas_seed_redis_image() {
  faas_image_present redis:7 || faas_try_pull redis:7 && return 0
  local rroot
  rroot=$(faas_seed_root redis /usr/bin/redis-server redis-server) || return 1
  install -m 0755 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/redis-entrypoint.sh" \
    "$rroot/usr/local/bin/docker-entrypoint.sh" || return 1
  mkdir -p "$rroot/data"
  tar -C "$rroot" -c . | docker import -c 'VOLUME /data' -c 'WORKDIR /data' -c 'EXPOSE 6379' \
    -c 'ENTRYPOINT ["docker-entrypoint.sh"]' -c 'CMD ["redis-server"]' \
    -c "LABEL io.faas.seed=$FAAS_SEED_VERSION" - redis:7 >/dev/null || return 1
  faas_say "seeded redis:7"
}

# rabbitmq:3-management for the platform's managed RabbitMQ where no registry answers: Debian's
# rabbitmq-server with its management plugin in the minimal root, with the usual image's
# environment contract (scripts/rabbitmq-entrypoint.sh), /var/lib/rabbitmq as its volume, AMQP on
# 5672 and the management API on 15672. Idempotent: reused when present.
faas_seed_rabbitmq_image() {
  faas_image_present rabbitmq:3-management || faas_try_pull rabbitmq:3-management && return 0
  local qroot
  qroot=$(faas_seed_root rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server rabbitmq-server) || return 1
  faas_as_root chroot "$qroot" rabbitmq-plugins enable --offline rabbitmq_management >/dev/null || return 1
  install -m 0755 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/rabbitmq-entrypoint.sh" \
    "$qroot/usr/local/bin/docker-entrypoint.sh" || return 1
  tar -C "$qroot" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/lib/rabbitmq/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'VOLUME /var/lib/rabbitmq' -c 'EXPOSE 5672 15672' \
    -c 'ENTRYPOINT ["docker-entrypoint.sh"]' -c 'CMD ["rabbitmq-server"]' \
    -c "LABEL io.faas.seed=$FAAS_SEED_VERSION" - rabbitmq:3-management >/dev/null || return 1
  faas_say "seeded rabbitmq:3-management"
}

# faas-test/dbclient: a service image for the databases' end-to-end tests, a service that really
# uses its databases: Python with Debian's PostgreSQL, Redis and AMQP drivers (psycopg2, redis,
# pika) and the engines' command-line clients. Idempotent: reused when present.
faas_seed_dbclient_image() {
  faas_image_present faas-test/dbclient:1 && return 0
  local croot
  croot=$(faas_seed_root dbclient /usr/lib/python3/dist-packages/pika/__init__.py \
    "python3 python3-psycopg2 python3-redis python3-pika postgresql-client redis-tools") || return 1
  tar -C "$croot" -c . | docker import -c 'CMD ["python3"]' \
    -c "LABEL io.faas.seed=$FAAS_SEED_VERSION" - faas-test/dbclient:1 >/dev/null || return 1
  faas_say "seeded faas-test/dbclient:1"
}

# schemathesis for the API contract test, in its own virtualenv under the tools cache (pinned,
# so every run checks the same rules), with jsonschema for the test's own checks. Prints the
# path of its `st`.
FAAS_SCHEMATHESIS_VERSION=4.32.5
FAAS_JSONSCHEMA_VERSION=4.26.0
faas_schemathesis() {
  local venv=${FAAS_TOOLS_CACHE:-/var/cache/faas-tools}/schemathesis-$FAAS_SCHEMATHESIS_VERSION
  if ! "$venv/bin/python" -c 'import schemathesis, jsonschema' >/dev/null 2>&1; then
    faas_say "installing schemathesis $FAAS_SCHEMATHESIS_VERSION from PyPI into $venv"
    python3 -m venv "$venv" >&2 || { faas_apt_install python3-venv && python3 -m venv "$venv" >&2; } || return 1
    "$venv/bin/pip" install -q "schemathesis==$FAAS_SCHEMATHESIS_VERSION" \
      "jsonschema==$FAAS_JSONSCHEMA_VERSION" >&2 || return 1
  fi
  printf '%s\n' "$venv/bin/st"
}

# PostgreSQL 15 for the tests (the ledger's shards; later the databases' managed servers): its
# own data directory and port on loopback, owned by the postgres user, no system service.
# Idempotent. Prints the admin URL. Databases named in "$@" are created when absent.
FAAS_PG_PORT=${FAAS_PG_PORT:-55432}
faas_start_postgres() {
  local home=${FAAS_PG_HOME:-/var/lib/faas-test/postgres} bin=/usr/lib/postgresql/15/bin
  local data=$home/data
  [ -x "$bin/pg_ctl" ] || faas_apt_install postgresql-15 || return 1
  if [ ! -s "$data/PG_VERSION" ]; then
    faas_say "initialising a PostgreSQL data directory in $data"
    faas_as_root mkdir -p "$data" && faas_as_root chown -R postgres:postgres "$home" || return 1
    faas_as_root su postgres -s /bin/sh -c "$bin/initdb -D '$data' -A trust -U postgres >'$home/initdb.log' 2>&1" \
      || { faas_say "initdb failed; see $home/initdb.log"; return 1; }
  fi
  # The sharded ledger commits a batch that spans shards with two-phase commit, which needs
  # prepared transactions: a server started without them is restarted with them.
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$FAAS_PG_PORT" \
    && [ "$(psql -h 127.0.0.1 -p "$FAAS_PG_PORT" -U postgres -tAc 'SHOW max_prepared_transactions')" = 0 ]; then
    faas_say "restarting PostgreSQL with prepared transactions"
    faas_as_root su postgres -s /bin/sh -c "$bin/pg_ctl -D '$data' -w -t 60 stop" >/dev/null || return 1
  fi
  if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$FAAS_PG_PORT"; then
    faas_say "starting PostgreSQL on 127.0.0.1:$FAAS_PG_PORT"
    faas_as_root mkdir -p /var/run/postgresql && faas_as_root chown postgres:postgres /var/run/postgresql
    faas_as_root su postgres -s /bin/sh -c "$bin/pg_ctl -D '$data' -l '$home/postgres.log' -w -t 60 \
      -o \"-c listen_addresses=127.0.0.1 -p $FAAS_PG_PORT -c unix_socket_directories=/var/run/postgresql -c fsync=off -c max_prepared_transactions=64 -c max_connections=200\" start" >/dev/null \
      || { faas_say "PostgreSQL did not start; see $home/postgres.log"; return 1; }
  fi
  # The admin is trusted on loopback and the socket; every other role (the databases the
  # platform provisions for services) logs in by password, so a wrong one is refused.
  local hba="# faas test server (scripts/lib.sh)
local all postgres trust
host  all postgres 127.0.0.1/32 trust
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256"
  if [ "$(faas_as_root cat "$data/pg_hba.conf")" != "$hba" ]; then
    faas_say "PostgreSQL: passwords for every role but the admin"
    printf '%s\n' "$hba" | faas_as_root tee "$data/pg_hba.conf" >/dev/null || return 1
    psql -h 127.0.0.1 -p "$FAAS_PG_PORT" -U postgres -qAtc 'SELECT pg_reload_conf()' >/dev/null || return 1
  fi
  local db
  for db in "$@"; do
    if ! psql -h 127.0.0.1 -p "$FAAS_PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
      psql -h 127.0.0.1 -p "$FAAS_PG_PORT" -U postgres -qc "CREATE DATABASE \"$db\"" >/dev/null || return 1
    fi
  done
  printf 'postgres://postgres@127.0.0.1:%s\n' "$FAAS_PG_PORT"
}

# RabbitMQ 3.10 for the tests (the databases' vhosts): its own node, data and ports on loopback
# (AMQP $FAAS_RABBITMQ_PORT, the management API $FAAS_RABBITMQ_API_PORT, distribution on the AMQP
# port + 2, epmd on 127.0.0.1), no system service. Idempotent. Prints the management API's admin URL (`guest`, which RabbitMQ
# lets in from loopback only).
FAAS_RABBITMQ_PORT=${FAAS_RABBITMQ_PORT:-55672}
FAAS_RABBITMQ_API_PORT=${FAAS_RABBITMQ_API_PORT:-55673}
faas_rabbitmq_env() {
  local home=${FAAS_RABBITMQ_HOME:-/var/lib/faas-test/rabbitmq}
  export HOME=$home RABBITMQ_NODENAME=faas-test@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$FAAS_RABBITMQ_PORT RABBITMQ_DIST_PORT=$((FAAS_RABBITMQ_PORT + 2)) \
    ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_MNESIA_BASE=$home/mnesia RABBITMQ_LOG_BASE=$home/log \
    RABBITMQ_CONFIG_FILE=$home/rabbitmq RABBITMQ_ENABLED_PLUGINS_FILE=$home/enabled_plugins \
    RABBITMQ_PID_FILE=$home/rabbitmq.pid
}
faas_start_rabbitmq() {
  faas_apt_install rabbitmq-server || return 1
  (
    faas_rabbitmq_env
    local bin=/usr/lib/rabbitmq/bin
    mkdir -p "$HOME" && cd "$HOME" || exit 1
    printf 'listeners.tcp.1 = 127.0.0.1:%s\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' \
      "$FAAS_RABBITMQ_PORT" "$FAAS_RABBITMQ_API_PORT" >"$HOME/rabbitmq.conf"
    printf '[rabbitmq_management].\n' >"$HOME/enabled_plugins"
    if ! "$bin/rabbitmq-diagnostics" -q ping >/dev/null 2>&1; then
      faas_say "starting RabbitMQ on 127.0.0.1:$FAAS_RABBITMQ_PORT (management API on $FAAS_RABBITMQ_API_PORT)"
      "$bin/rabbitmq-server" -detached >/dev/null 2>&1 || exit 1
      # The node registers with epmd a moment after -detached returns; then it boots.
      local i
      for i in $(seq 1 120); do
        "$bin/rabbitmq-diagnostics" -q ping >/dev/null 2>&1 && break
        sleep 0.5
      done
      "$bin/rabbitmqctl" -q await_startup --timeout 120 >/dev/null \
        || { faas_say "RabbitMQ did not start; see $HOME/log"; exit 1; }
    fi
  ) || return 1
  printf 'http://guest:guest@127.0.0.1:%s\n' "$FAAS_RABBITMQ_API_PORT"
}

# An SMTP server on loopback that keeps every message it accepts as a file (aiosmtpd from PyPI,
# in its own venv; scripts/smtp_sink.py), for the billing notification tests. Idempotent.
# Prints its HOST:PORT; messages land in $FAAS_SMTP_DIR.
FAAS_AIOSMTPD_VERSION=1.4.6
FAAS_SMTP_PORT=${FAAS_SMTP_PORT:-2525}
FAAS_SMTP_DIR=${FAAS_SMTP_DIR:-/var/lib/faas-test/mail}
faas_start_smtp_sink() {
  local venv=${FAAS_TOOLS_CACHE:-/var/cache/faas-tools}/aiosmtpd-$FAAS_AIOSMTPD_VERSION
  local script; script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/smtp_sink.py"
  if ! "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    faas_say "installing aiosmtpd $FAAS_AIOSMTPD_VERSION from PyPI into $venv"
    python3 -m venv "$venv" >&2 || { faas_apt_install python3-venv && python3 -m venv "$venv" >&2; } || return 1
    "$venv/bin/pip" install -q "aiosmtpd==$FAAS_AIOSMTPD_VERSION" >&2 || return 1
  fi
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$FAAS_SMTP_PORT") 2>/dev/null; then
    faas_say "starting the SMTP sink on 127.0.0.1:$FAAS_SMTP_PORT (mail in $FAAS_SMTP_DIR)"
    mkdir -p "$FAAS_SMTP_DIR" || return 1
    setsid nohup "$venv/bin/python" "$script" --port "$FAAS_SMTP_PORT" --dir "$FAAS_SMTP_DIR" \
      >"$(dirname "$FAAS_SMTP_DIR")/smtp-sink.log" 2>&1 </dev/null &
    local i
    for i in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$FAAS_SMTP_PORT") 2>/dev/null && break
      sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$FAAS_SMTP_PORT") 2>/dev/null \
      || { faas_say "the SMTP sink did not start; see $(dirname "$FAAS_SMTP_DIR")/smtp-sink.log"; return 1; }
  fi
  printf '127.0.0.1:%s\n' "$FAAS_SMTP_PORT"
}

# A container registry on loopback (Debian's docker-registry: the distribution registry), for
# the Kubernetes runtime's `--images registry --registry 127.0.0.1:$FAAS_REGISTRY_PORT`. The
# engine treats 127.0.0.0/8 as an insecure registry by default, so no TLS is needed.
FAAS_REGISTRY_PORT=${FAAS_REGISTRY_PORT:-55000}
FAAS_REGISTRY_DIR=${FAAS_REGISTRY_DIR:-/var/lib/faas-test/registry}
faas_start_registry() {
  faas_apt_install docker-registry || return 1
  if ! curl -fsS "http://127.0.0.1:$FAAS_REGISTRY_PORT/v2/" >/dev/null 2>&1; then
    faas_say "starting a container registry on 127.0.0.1:$FAAS_REGISTRY_PORT (data in $FAAS_REGISTRY_DIR)"
    mkdir -p "$FAAS_REGISTRY_DIR/data" || return 1
    cat >"$FAAS_REGISTRY_DIR/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $FAAS_REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$FAAS_REGISTRY_PORT
CONFIG
    setsid nohup docker-registry serve "$FAAS_REGISTRY_DIR/config.yml" \
      >"$FAAS_REGISTRY_DIR/registry.log" 2>&1 </dev/null &
    local i
    for i in $(seq 1 100); do
      curl -fsS "http://127.0.0.1:$FAAS_REGISTRY_PORT/v2/" >/dev/null 2>&1 && break
      sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$FAAS_REGISTRY_PORT/v2/" >/dev/null 2>&1 \
      || { faas_say "the registry did not start; see $FAAS_REGISTRY_DIR/registry.log"; return 1; }
  fi
  printf '127.0.0.1:%s\n' "$FAAS_REGISTRY_PORT"
}
