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
      local proot="$cache/bookworm-python"
      if [ ! -x "$proot/usr/bin/python3" ]; then
        faas_as_root rm -rf "$proot"
        faas_as_root cp -a "$root" "$proot"
        # Builds inside the image may reach package registries only through the host's TLS proxy.
        [ -r /etc/ssl/certs/ca-certificates.crt ] && mkdir -p "$proot/etc/ssl/certs" \
          && cp /etc/ssl/certs/ca-certificates.crt "$proot/etc/ssl/certs/ca-certificates.crt"
        cp /etc/resolv.conf "$proot/etc/resolv.conf" 2>/dev/null || true
        faas_as_root chroot "$proot" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip ca-certificates >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*' \
          >"$cache/python-chroot.log" 2>&1 || { faas_say "installing python3 into the seed root failed; see $cache/python-chroot.log"; return 1; }
        [ -r /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$proot/etc/ssl/certs/ca-certificates.crt"
        ln -sf python3 "$proot/usr/bin/python" 2>/dev/null || true
      fi
      tar -C "$proot" -c . | docker import -c 'CMD ["python3"]' -c "LABEL io.faas.seed=$FAAS_SEED_VERSION" - python:3.11-slim >/dev/null || return 1
      docker tag python:3.11-slim python:3.11
      docker tag python:3.11-slim python:3-slim
      faas_say "seeded python:3.11-slim, python:3.11, python:3-slim"
    fi
  fi
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
  local db
  for db in "$@"; do
    if ! psql -h 127.0.0.1 -p "$FAAS_PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
      psql -h 127.0.0.1 -p "$FAAS_PG_PORT" -U postgres -qc "CREATE DATABASE \"$db\"" >/dev/null || return 1
    fi
  done
  printf 'postgres://postgres@127.0.0.1:%s\n' "$FAAS_PG_PORT"
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
