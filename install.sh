#!/usr/bin/env bash
# Builds faas and faas-platform from this checkout and installs them.
#
#   ./install.sh [--prefix DIR] [--yes] [--no-docker]
#
#   --prefix DIR  where the binaries go (default: ~/.local/bin)
#   --yes         answer yes: install and start a Docker Engine when none answers (Debian/Ubuntu)
#   --no-docker   install the binaries only; leave Docker and the base images alone
#
# Idempotent: running it again rebuilds what changed and says what it left as it was. Where no
# Docker Engine answers on Debian or Ubuntu it installs and starts one (asking first on a
# terminal); where no image registry can be reached it seeds the base images the templates name
# (busybox, debian:bookworm-slim, python:3.11-slim) from the local distribution.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/scripts/lib.sh"

prefix="$HOME/.local/bin"
yes=0
docker_setup=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --yes|-y) yes=1; shift ;;
    --no-docker) docker_setup=0; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v cargo >/dev/null 2>&1; then
  faas_say "cargo is not installed: get Rust from https://rustup.rs, then run ./install.sh again"
  exit 1
fi

faas_say "building faas and faas-platform (release)"
(cd "$here" && cargo build --release --locked -p faas-cli -p faas-platform)
target_dir=${CARGO_TARGET_DIR:-$here/target}

mkdir -p "$prefix"
for bin in faas faas-platform; do
  src="$target_dir/release/$bin"
  dest="$prefix/$bin"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    faas_say "$dest is up to date"
  else
    install -m 0755 "$src" "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest"
    faas_say "installed $dest"
  fi
done

if [ "$docker_setup" = 1 ]; then
  if ! faas_docker_answers; then
    if ! command -v dockerd >/dev/null 2>&1 && ! faas_is_debian_like; then
      faas_say "no Docker Engine answers; install one (https://docs.docker.com/engine/install/) to build and run services"
    else
      answer=$yes
      if [ "$answer" = 0 ] && [ -t 0 ] && [ -t 2 ]; then
        printf 'No Docker Engine answers. Install and start one now? [y/N] ' >&2
        read -r reply
        case "$reply" in [yY]*) answer=1 ;; esac
      fi
      if [ "$answer" = 1 ]; then
        faas_start_docker
      else
        faas_say "no Docker Engine answers; run ./install.sh --yes to install and start one"
      fi
    fi
  fi
  if faas_docker_answers; then
    FAAS_TRY_PULL=1 faas_seed_images
    # The images of the platform's managed database servers (pulled where a registry answers,
    # else seeded from the distribution's packages).
    FAAS_TRY_PULL=1 faas_seed_postgres_image
    FAAS_TRY_PULL=1 faas_seed_redis_image
    FAAS_TRY_PULL=1 faas_seed_rabbitmq_image
    faas_say "Docker Engine $(docker version --format '{{.Server.Version}}') is ready, with the templates' base images and the database servers' images"
  fi
fi

case ":$PATH:" in
  *":$prefix:"*) ;;
  *) faas_say "add $prefix to your PATH, e.g. export PATH=\"$prefix:\$PATH\"" ;;
esac
faas_say "done: $("$prefix/faas" --version)"
