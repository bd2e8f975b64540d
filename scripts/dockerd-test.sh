#!/usr/bin/env bash
# A PRIVATE dockerd for dockward's end-to-end tests: its own socket, data, exec root, containerd,
# cgroup parent and config file, so that tests never touch (or are disturbed by) a system daemon.
#
#   scripts/dockerd-test.sh start [--lease PID]   start (or reuse) the daemon, build busybox:local;
#                                                 prints DOCKWARD_TEST_DOCKER_SOCK=... and
#                                                 DOCKWARD_TEST_DOCKER_STARTED=0|1 on stdout
#   scripts/dockerd-test.sh release PID           drop a lease; the last lease stops a daemon
#                                                 that a leased start launched
#   scripts/dockerd-test.sh stop                  stop it, whoever started it; removes every
#                                                 container and unused volume first
#   scripts/dockerd-test.sh env                   `eval "$(scripts/dockerd-test.sh env)"`
#   scripts/dockerd-test.sh status                exit 0 when it answers
#   scripts/dockerd-test.sh install               apt-get install docker.io busybox-static if missing
#
# Environment: DOCKWARD_TEST_DOCKER_DIR (default /tmp/dockward-test-docker),
# DOCKWARD_TEST_STORAGE_DRIVER (e.g. vfs when overlay2 does not work on the backing filesystem;
# unset: dockerd picks the first driver that works, vfs last), DOCKWARD_TEST_BUSYBOX (a STATIC busybox),
# DOCKWARD_TEST_DOCKER_START_TIMEOUT (seconds, default 60).
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

DIR=${DOCKWARD_TEST_DOCKER_DIR:-/tmp/dockward-test-docker}
SOCK=$DIR/docker.sock
PIDFILE=$DIR/docker.pid
LOG=$DIR/dockerd.log
CTRD_DIR=$DIR/containerd
CTRD_SOCK=$CTRD_DIR/containerd.sock
CTRD_PIDFILE=$CTRD_DIR/containerd.pid
CTRD_LOG=$CTRD_DIR/containerd.log
LEASES=$DIR/leases
# Present while the running daemon was launched by a leased start (a test run), so that the last
# release stops it; a daemon someone started by hand is theirs to stop.
MANAGED=$DIR/managed
IMAGE=busybox:local
# Bump when the image's content changes, so an existing busybox:local is rebuilt.
IMAGE_VERSION=1
IMAGE_STAMP=$DIR/image.stamp
START_TIMEOUT=${DOCKWARD_TEST_DOCKER_START_TIMEOUT:-60}
# Applets the tests rely on; the image gets every applet the binary has, these must be among them.
REQUIRED_APPLETS="sh echo sleep cat true false ls ps head tail wc yes dd env id seq top printf test grep mkdir rm tar kill touch"

log() { printf 'dockerd-test: %s\n' "$*" >&2; }

# Set by cmd_start while a daemon it launched is not yet usable: a failed start leaves nothing
# running behind it.
CLEANUP_ON_DIE=0

die() {
  log "ERROR: $*"
  # dockerd's own last words go last, where a reader of a truncated log tail sees them; gRPC
  # connection chatter says nothing about why a start failed.
  local f
  for f in "$CTRD_LOG" "$LOG"; do
    if [[ -s $f ]]; then
      log "last lines of $f:"
      grep -v 'module=grpc' "$f" | tail -n 15 >&2 || true
    fi
  done
  if [[ $CLEANUP_ON_DIE -eq 1 ]]; then
    CLEANUP_ON_DIE=0
    do_stop || true
  fi
  exit 1
}

# The CLI must not read the caller's ~/.docker (credentials, contexts) nor a DOCKER_* pointing
# elsewhere; `timeout` bounds every call, a wedged daemon must not hang a test run.
docker_private() {
  local seconds=$1
  shift
  timeout "$seconds" env -u DOCKER_HOST -u DOCKER_CONTEXT -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
    -u DOCKER_API_VERSION DOCKER_CONFIG="$DIR/cli-config" docker -H "unix://$SOCK" "$@"
}

require_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (dockerd needs it); current uid $(id -u)"
}

find_busybox() {
  local c
  for c in "${DOCKWARD_TEST_BUSYBOX:-}" /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null || true)"; do
    if [[ -n $c && -x $c ]]; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

install_deps() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v containerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker >/dev/null 2>&1 || missing+=(docker.io)
  find_busybox >/dev/null || missing+=(busybox-static)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  require_root
  local pkgs
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${pkgs[*]} (apt-get)"
  local rc=0
  apt_install_stopped "${pkgs[@]}" || rc=$?
  [[ $rc -eq 0 ]] || die "apt-get install ${pkgs[*]} failed (exit $rc)"
}

# A pid is ours only if it is alive, runs the expected program AND mentions our directory on its
# command line: a stale pidfile whose pid was reused must never get a signal from us.
pid_is() {
  local pid=$1 comm=$2 marker=$3
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/comm && $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

dockerd_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  pid_is "$pid" dockerd "$SOCK" && printf '%s\n' "$pid"
}

containerd_pid() {
  local pid
  pid=$(cat "$CTRD_PIDFILE" 2>/dev/null) || return 1
  pid_is "$pid" containerd "$CTRD_DIR/config.toml" && printf '%s\n' "$pid"
}

answers() { docker_private 10 version >/dev/null 2>&1; }

wait_gone() {
  local pid=$1 seconds=$2 i
  for ((i = 0; i < seconds * 4; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  return 1
}

start_containerd() {
  containerd_pid >/dev/null && return 0
  mkdir -p "$CTRD_DIR"
  rm -f "$CTRD_SOCK" "$CTRD_SOCK.ttrpc"
  [[ -e $CTRD_LOG ]] && mv -f "$CTRD_LOG" "$CTRD_LOG.1"
  # dockerd only supervises its own containerd when /run/containerd/containerd.sock does not
  # exist (moby cmd/dockerd systemContainerdRunning); otherwise it silently shares the system's.
  # Starting ours and passing --containerd keeps the test daemon private either way.
  cat >"$CTRD_DIR/config.toml" <<EOF
version = 2
root = "$CTRD_DIR/root"
state = "$CTRD_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$CTRD_SOCK"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD_DIR/opt"
EOF
  # setsid: the daemons outlive this script and do not share the caller's process group, so a
  # Ctrl-C aimed at a test run does not kill them halfway; 9>&- releases the lock for them.
  setsid containerd --config "$CTRD_DIR/config.toml" </dev/null >>"$CTRD_LOG" 2>&1 9>&- &
  local pid=$! i
  echo "$pid" >"$CTRD_PIDFILE"
  for ((i = 0; i < START_TIMEOUT * 4; i++)); do
    if [[ -S $CTRD_SOCK ]]; then
      containerd_pid >/dev/null || die "pid $pid owns no containerd with our config (did setsid fork?)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "containerd exited during start-up"
    sleep 0.25
  done
  die "containerd did not create $CTRD_SOCK within ${START_TIMEOUT}s"
}

start_dockerd() {
  mkdir -p "$DIR/cli-config"
  # Our own (empty) config file: /etc/docker/daemon.json may set hosts, mirrors or a data root
  # that would clash with the flags below or make the daemon less private.
  [[ -e $DIR/daemon.json ]] || echo '{}' >"$DIR/daemon.json"
  rm -f "$PIDFILE" "$SOCK"
  [[ -e $LOG ]] && mv -f "$LOG" "$LOG.1"
  local args=(
    --host "unix://$SOCK"
    --data-root "$DIR/data"
    --exec-root "$DIR/exec"
    --pidfile "$PIDFILE"
    --config-file "$DIR/daemon.json"
    --containerd "$CTRD_SOCK"
    --cgroup-parent /dockward-test
    --bridge=none --iptables=false --ip-masq=false --ip-forward=false --userland-proxy=false
  )
  [[ -n ${DOCKWARD_TEST_STORAGE_DRIVER:-} ]] && args+=(--storage-driver "$DOCKWARD_TEST_STORAGE_DRIVER")
  log "starting dockerd on $SOCK (log: $LOG)"
  # A dead proxy on loopback: an accidental pull of a missing image fails at once instead of
  # reaching a registry on the internet (tests must only talk to loopback and this socket).
  HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY='' \
  http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 no_proxy='' \
    setsid dockerd "${args[@]}" </dev/null >>"$LOG" 2>&1 9>&- &
  local launcher=$! i
  for ((i = 0; i < START_TIMEOUT * 4; i++)); do
    if answers; then
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null && ! dockerd_pid >/dev/null; then
      die "dockerd exited during start-up"
    fi
    sleep 0.25
  done
  die "dockerd did not answer on $SOCK within ${START_TIMEOUT}s"
}

build_image() {
  local busybox applet id
  busybox=$(find_busybox) || die "no busybox binary (apt-get install busybox-static)"
  local work
  work=$(mktemp -d "$DIR/image.XXXXXX")
  local root=$work/root
  mkdir -p "$root"/{bin,etc,tmp,root,home,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  local applets
  applets=$("$busybox" --list) || die "$busybox --list failed"
  for applet in $REQUIRED_APPLETS; do
    grep -qxF "$applet" <<<"$applets" || die "$busybox has no '$applet' applet"
  done
  while IFS= read -r applet; do
    [[ -z $applet || $applet == busybox || $applet == */* ]] && continue
    ln -s busybox "$root/bin/$applet"
  done <<<"$applets"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  log "importing $IMAGE from $busybox"
  tar --numeric-owner -C "$root" -c . | docker_private 120 import --change 'CMD ["sh"]' - "$IMAGE" >/dev/null ||
    die "docker import of $IMAGE failed"
  rm -rf "$work"
  # A dynamically linked busybox imports fine and fails only when run: find out now.
  local out
  out=$(docker_private 60 run --rm --network none "$IMAGE" echo ok 2>&1) ||
    die "$IMAGE does not run (is $busybox statically linked?): $out"
  [[ $out == ok ]] || die "$IMAGE smoke test printed '$out'"
  id=$(docker_private 30 image inspect --format '{{.Id}}' "$IMAGE")
  echo "$IMAGE_VERSION $id" >"$IMAGE_STAMP"
}

ensure_image() {
  local id
  if id=$(docker_private 30 image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null) &&
    [[ $(cat "$IMAGE_STAMP" 2>/dev/null) == "$IMAGE_VERSION $id" ]]; then
    return 0
  fi
  build_image
}

lock() {
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  exec 9>"$DIR/lock"
  flock -w 300 9 || die "could not lock $DIR/lock within 300s"
}

prune_leases() {
  local f
  mkdir -p "$LEASES"
  for f in "$LEASES"/*; do
    [[ -e $f ]] || continue
    kill -0 "$(basename "$f")" 2>/dev/null || rm -f "$f"
  done
}

live_leases() { find "$LEASES" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

check_paths() {
  [[ $DIR == /* ]] || die "DOCKWARD_TEST_DOCKER_DIR must be absolute: $DIR"
  # sun_path is 108 bytes; containerd also binds "$CTRD_SOCK.ttrpc".
  ((${#CTRD_SOCK} + 6 < 100)) || die "DOCKWARD_TEST_DOCKER_DIR is too long for unix socket paths: $DIR"
}

cmd_start() {
  local lease=
  if [[ ${1:-} == --lease ]]; then
    lease=${2:?--lease needs a PID}
    [[ $lease =~ ^[0-9]+$ ]] || die "--lease needs a numeric PID, got '$lease'"
  fi
  check_paths
  install_deps
  require_root
  lock
  local started=0
  if dockerd_pid >/dev/null; then
    local i
    for ((i = 0; i < START_TIMEOUT * 4; i++)); do
      answers && break
      sleep 0.25
    done
    answers || die "a dockerd is running on $SOCK (pid $(dockerd_pid)) but does not answer"
    log "reusing the running dockerd on $SOCK"
  else
    CLEANUP_ON_DIE=1
    start_containerd
    start_dockerd
    started=1
    if [[ -n $lease ]]; then touch "$MANAGED"; else rm -f "$MANAGED"; fi
  fi
  ensure_image
  CLEANUP_ON_DIE=0
  if [[ -n $lease ]]; then
    prune_leases
    touch "$LEASES/$lease"
  fi
  echo "DOCKWARD_TEST_DOCKER_SOCK=$SOCK"
  echo "DOCKWARD_TEST_DOCKER_STARTED=$started"
}

do_stop() {
  local pid
  if pid=$(dockerd_pid); then
    # dockerd stops each running container with SIGTERM and waits its StopTimeout (10 s) before
    # SIGKILL, and busybox `sleep` as PID 1 ignores SIGTERM. Test containers hold nothing worth a
    # graceful end: remove them all (and unused volumes), so the daemon stops in about a second
    # and the next run starts from a clean slate (the data root, with busybox:local, is kept).
    local all
    all=$(docker_private 30 ps --all --quiet 2>/dev/null || true)
    if [[ -n $all ]]; then
      # shellcheck disable=SC2086 # one id per word
      docker_private 120 rm --force --volumes $all >/dev/null 2>&1 || true
    fi
    docker_private 60 volume prune --force >/dev/null 2>&1 || true
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 60; then
      log "dockerd did not stop within 60s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || true
    fi
  fi
  if pid=$(containerd_pid); then
    # After a killed dockerd, containers may still run: end them while containerd can still say
    # which ones are ours (a killed task's shim lingers until its task is deleted).
    local task
    for task in $(timeout 10 ctr --address "$CTRD_SOCK" --namespace moby tasks list --quiet 2>/dev/null || true); do
      timeout 20 ctr --address "$CTRD_SOCK" --namespace moby tasks delete --force "$task" >/dev/null 2>&1 || true
    done
    log "stopping containerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 20; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || true
    fi
  fi
  # A graceful dockerd unmounts everything; a killed one leaves its rootfs and netns mounts.
  local mnt
  while IFS= read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || log "could not unmount $mnt"
  done < <(awk -v dir="$DIR/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  rm -f "$PIDFILE" "$CTRD_PIDFILE" "$MANAGED" "$SOCK"
  rm -rf "$LEASES"
}

cmd_stop() {
  check_paths
  [[ -d $DIR ]] || return 0
  lock
  do_stop
}

cmd_release() {
  local lease=${1:?release needs the PID given to start --lease}
  [[ -d $DIR ]] || return 0
  lock
  rm -f "$LEASES/$lease"
  prune_leases
  if [[ $(live_leases) -eq 0 && -e $MANAGED ]]; then
    do_stop
  elif [[ -e $MANAGED ]]; then
    log "dockerd still leased by $(live_leases) other test run(s); leaving it running"
  fi
}

cmd_env() {
  printf 'export DOCKWARD_TEST_DOCKER_SOCK=%q\n' "$SOCK"
  printf 'export DOCKER_HOST=%q\n' "unix://$SOCK"
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  release) shift; cmd_release "$@" ;;
  env) cmd_env ;;
  status) dockerd_pid >/dev/null && answers ;;
  install) install_deps ;;
  *)
    echo "usage: $0 start [--lease PID] | release PID | stop | env | status | install" >&2
    exit 2
    ;;
esac
