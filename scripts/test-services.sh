#!/usr/bin/env bash
# Installs what the tests need beyond Python packages: the distribution's PostgreSQL server.
# The tests start their own throw-away cluster with it (tests/pg.py); nothing here starts one.
# Needs root (CI runs `./dev test` as root on a fresh machine) unless it is installed already.
set -euo pipefail

have_postgresql() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

install_postgresql() {
  if have_postgresql; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-services: the PostgreSQL server is not installed and this is not root;" >&2
    echo "  install it (Debian/Ubuntu: sudo apt-get install -y postgresql) and run again." >&2
    return 1
  fi
  echo "test-services: installing the PostgreSQL server (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  have_postgresql
}

install_postgresql
