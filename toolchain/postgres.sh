#!/usr/bin/env bash
# PostgreSQL for the test suite, from Debian's packages. `install` makes sure
# the server binaries are there; the tests start a throwaway server of their
# own (tests/postgres.py) on a free loopback port, so nothing system-wide runs.
set -euo pipefail
case "${1:-}" in
  install)
    if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi
    if [ "$(id -u)" != 0 ]; then
      echo "[postgres] PostgreSQL server binaries are missing: run 'sudo apt-get install -y postgresql'" >&2
      echo "[postgres] (the PostgreSQL half of the suite is skipped until then)" >&2
      exit 0
    fi
    echo "[postgres] installing PostgreSQL from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    # Debian starts a system-wide cluster on install; the tests do not use it.
    (service postgresql stop || pg_ctlcluster --help >/dev/null) >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
