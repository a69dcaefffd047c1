#!/usr/bin/env bash
# Chromium for the browser tests (tests/browser), from Debian's packages.
# Playwright drives it through `executable_path=/usr/bin/chromium`; Playwright's
# own browser download is never used (it cannot work here). `install` makes sure
# the browser is there: as root with apt-get, otherwise it prints the command to
# run and the browser tests skip until then.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
case "${1:-}" in
  install)
    if [ -x "$CHROMIUM" ]; then exit 0; fi
    if [ "$(id -u)" != 0 ]; then
      echo "[chromium] $CHROMIUM is missing: run 'sudo apt-get install -y chromium'" >&2
      echo "[chromium] (the browser tests in tests/browser are skipped until then)" >&2
      exit 0
    fi
    echo "[chromium] installing Chromium from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # Fonts so screenshots show text; no recommends (no desktop integration needed headless).
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    "$CHROMIUM" --version >&2
    ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
