# shellcheck shell=bash
# apt_install_stopped [APT-OPTION...] PKG...: installs Debian packages without letting their maintainer scripts
# start a SYSTEM service (docker, containerd, prometheus): a temporary policy-rc.d (Debian's
# documented switch, exit 101 = "action forbidden") keeps them stopped. The dpkg lock timeout
# lets two of the project's scripts install at the same moment. Returns apt-get's status.
apt_install_stopped() {
  local own_policy=0 rc=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  {
    apt-get -o DPkg::Lock::Timeout=600 update &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y "$@"
  } >&2 || rc=$?
  [[ $own_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  return "$rc"
}
