#!/usr/bin/env bash
# Prometheus for dockward's observability tests (test/e2e/observability-*.test.ts): the tests start
# their own `prometheus` on loopback with a temporary data directory and run `promtool`; this
# script only makes sure Debian's package is installed. It never starts the system service.
#
#   scripts/prometheus-test.sh install   apt-get install prometheus if prometheus or promtool is missing
#   scripts/prometheus-test.sh check     exit 0 when both are on PATH (prints their versions)
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

log() { printf 'prometheus-test: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

have_all() {
  command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}

cmd_install() {
  have_all && return 0
  [[ $(id -u) -eq 0 ]] || die "prometheus is not installed and installing it needs root (apt-get install prometheus)"
  # Test files run in parallel and may both find Prometheus missing: one installs, the other waits.
  exec 9>/tmp/dockward-prometheus-install.lock
  flock -w 900 9 || die "timed out waiting for another install to finish"
  have_all && return 0
  log "installing prometheus (apt-get)"
  local rc=0
  apt_install_stopped --no-install-recommends prometheus || rc=$?
  [[ $rc -eq 0 ]] || die "apt-get install prometheus failed (exit $rc)"
  have_all || die "prometheus was installed but prometheus/promtool are not on PATH"
}

cmd_check() {
  have_all || die "prometheus or promtool is not on PATH (scripts/prometheus-test.sh install)"
  prometheus --version 2>&1 | head -n 1
  promtool --version 2>&1 | head -n 1
}

case ${1:-} in
  install) cmd_install ;;
  check) cmd_check ;;
  *)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac
