#!/usr/bin/env bash
# Sets up this machine for Shoal (as root, Debian 12, no systemd; idempotent):
# Debian packages, Node dependencies and the build, a running dockerd, the
# local busybox test image; then (unless --deps-only) starts a Shoal daemon
# on /run/shoal/shoal.sock, makes it a one-node swarm and a `docker context`.
#
#   bash scripts/setup.sh              everything, ending with a one-node swarm
#   bash scripts/setup.sh --deps-only  everything but starting Shoal (CI)
#   bash scripts/setup.sh --stop       stop the Shoal daemon started here
set -euo pipefail

SHOAL_SOCK=/run/shoal/shoal.sock
SHOAL_PIDFILE=/run/shoal/shoal.pid
SHOAL_DATA=/var/lib/shoal
SHOAL_LOG=/var/log/shoal.log
ENGINE_SOCK=/var/run/docker.sock
DOCKERD_LOG=/var/log/dockerd.log
TEST_IMAGE=shoal-test/busybox:1
PACKAGES=(docker.io etcd-server etcd-client busybox-static iproute2 iptables nftables conntrack tcpdump procps util-linux tar docker-registry apache2-utils haproxy wireguard-go wireguard-tools)

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

DEPS_ONLY=0
STOP=0
for arg in "$@"; do
  case "$arg" in
    --deps-only) DEPS_ONLY=1 ;;
    --stop) STOP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $arg" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "run as root"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

# GET /_ping on a unix socket; true if it answers 200 within 3 s.
ping_socket() {
  node -e '
    const req = require("http").request({ socketPath: process.argv[1], path: "/_ping", timeout: 3000 }, (res) => { res.resume(); process.exit(res.statusCode === 200 ? 0 : 1); });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => process.exit(1));
    req.end();' "$1" 2>/dev/null
}

# True if the pid file names a live process whose command line contains $2.
pidfile_alive() {
  local file=$1 want=$2 pid
  [ -s "$file" ] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$want"
}

stop_shoal() {
  if pidfile_alive "$SHOAL_PIDFILE" "cli/main.js daemon"; then
    local pid
    pid=$(tr -dc '0-9' <"$SHOAL_PIDFILE")
    log "stopping the Shoal daemon (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "still running after 40 s; SIGKILL"; kill -KILL "$pid"; fi
  else
    log "no Shoal daemon started by this script is running"
  fi
  rm -f "$SHOAL_PIDFILE"
}

if [ "$STOP" -eq 1 ]; then stop_shoal; exit 0; fi

# --- Node.js (the machine's own; Debian's is too old) -----------------------
command -v node >/dev/null || die "node (>= 20) is not installed"
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "node >= 20 is required, found $(node --version)"
command -v npm >/dev/null || die "npm is not installed"

# --- Debian packages ----------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No init system here: keep package scripts from starting services (a system
  # etcd or dockerd); this script starts what it needs itself.
  POLICY=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"; chmod 755 "$POLICY"; made_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ "$made_policy" -eq 1 ]; then rm -f "$POLICY"; trap - EXIT; fi
else
  log "Debian packages already installed"
fi
for bin in /usr/sbin/dockerd /usr/bin/docker /usr/bin/etcd /usr/bin/etcdctl /bin/busybox /usr/bin/nsenter /usr/sbin/ip /usr/sbin/nft /usr/sbin/conntrack /usr/bin/wg /usr/bin/wireguard-go; do
  [ -x "$bin" ] || die "$bin missing after installing packages"
done

# --- Node dependencies and the build -----------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
else
  log "node_modules up to date"
fi
log "npm run build"
npm run build

# --- dockerd -------------------------------------------------------------------
engine_ok() { timeout 10 /usr/bin/docker -H "unix://$ENGINE_SOCK" info >/dev/null 2>&1; }
if engine_ok; then
  log "dockerd answers on $ENGINE_SOCK"
else
  # A dockerd killed earlier leaves pid files that make the next one wait for
  # a containerd that is not there (FIELD-NOTES).
  if ! pidfile_alive /var/run/docker.pid dockerd; then rm -f /var/run/docker.pid; fi
  if ! pidfile_alive /var/run/docker/containerd/containerd.pid containerd; then rm -f /var/run/docker/containerd/containerd.pid; fi
  if pidfile_alive /var/run/docker.pid dockerd; then
    log "a dockerd is running but not answering yet; waiting for it"
  else
    log "starting dockerd (log: $DOCKERD_LOG)"
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  deadline=$((SECONDS + 90))
  until engine_ok; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not answer on $ENGINE_SOCK within 90 s (log: $DOCKERD_LOG)"
    fi
    sleep 0.5
  done
  log "dockerd is up"
fi
engine_swarm=$(/usr/bin/docker -H "unix://$ENGINE_SOCK" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true)
if [ "$engine_swarm" != "inactive" ]; then
  log "WARNING: the host dockerd is in swarm state '$engine_swarm'; Shoal needs a plain engine (docker -H unix://$ENGINE_SOCK swarm leave --force)"
fi

# --- the local busybox image (nothing can be pulled here) ---------------------
if /usr/bin/docker -H "unix://$ENGINE_SOCK" image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
  log "image $TEST_IMAGE present"
else
  log "making image $TEST_IMAGE from Debian's busybox-static"
  tmp=$(mktemp -d /tmp/shoal-busybox.XXXXXX)
  root="$tmp/rootfs"
  mkdir -p "$root"/{bin,etc,tmp,root,var,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  chmod 755 "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -c . | /usr/bin/docker -H "unix://$ENGINE_SOCK" import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$TEST_IMAGE" >/dev/null
  rm -rf "$tmp"
  log "image $TEST_IMAGE made"
fi

if [ "$DEPS_ONLY" -eq 1 ]; then
  log "done (--deps-only: Shoal not started)"
  exit 0
fi

# --- the Shoal daemon ---------------------------------------------------------
mkdir -p "$(dirname "$SHOAL_SOCK")" "$SHOAL_DATA"
# The data root holds etcd, the swarm's keys and etcd.log: root only (the
# daemon tightens it again on every start). Its own log likewise.
chmod 700 "$SHOAL_DATA"
touch "$SHOAL_LOG" && chmod 600 "$SHOAL_LOG"
if ping_socket "$SHOAL_SOCK"; then
  log "a Shoal daemon already answers on $SHOAL_SOCK"
else
  if pidfile_alive "$SHOAL_PIDFILE" "cli/main.js daemon"; then
    log "the Shoal daemon in $SHOAL_PIDFILE is not answering; restarting it"
    stop_shoal
  fi
  log "starting the Shoal daemon on $SHOAL_SOCK (data root $SHOAL_DATA, log $SHOAL_LOG)"
  # node's flags for the daemon (src/common/node-flags.ts; SHOAL_DAEMON_NODE_FLAGS replaces them).
  read -r -a NODE_FLAGS <<<"$(node -p "require('$REPO/dist/src/common/node-flags').daemonNodeFlags().join(' ')")"
  # and its malloc settings (GLIBC_TUNABLES; the same file, daemonEnv).
  read -r -a NODE_ENV <<<"$(node -p "Object.entries(require('$REPO/dist/src/common/node-flags').daemonEnv()).map(([k, v]) => k + '=' + v).join(' ')")"
  setsid env "${NODE_ENV[@]}" node "${NODE_FLAGS[@]}" "$REPO/dist/src/cli/main.js" daemon -H "unix://$SHOAL_SOCK" --data-root "$SHOAL_DATA" \
    --engine "unix://$ENGINE_SOCK" >>"$SHOAL_LOG" 2>&1 </dev/null &
  echo $! >"$SHOAL_PIDFILE"
  deadline=$((SECONDS + 60))
  until ping_socket "$SHOAL_SOCK"; do
    if ! kill -0 "$(cat "$SHOAL_PIDFILE")" 2>/dev/null; then
      tail -n 30 "$SHOAL_LOG" >&2 || true
      die "the Shoal daemon exited (log: $SHOAL_LOG)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$SHOAL_LOG" >&2 || true
      die "the Shoal daemon did not answer on $SHOAL_SOCK within 60 s (log: $SHOAL_LOG)"
    fi
    sleep 0.2
  done
  log "Shoal is up (pid $(cat "$SHOAL_PIDFILE"))"
fi

shoal_docker() { DOCKER_CLI_HINTS=false /usr/bin/docker -H "unix://$SHOAL_SOCK" "$@"; }
state=$(shoal_docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true)
if [ "$state" = active ]; then
  log "already in a swarm"
else
  log "docker swarm init"
  shoal_docker swarm init
fi

if /usr/bin/docker context inspect shoal >/dev/null 2>&1; then
  /usr/bin/docker context update shoal --docker "host=unix://$SHOAL_SOCK" >/dev/null
else
  /usr/bin/docker context create shoal --description "Shoal on this host" --docker "host=unix://$SHOAL_SOCK" >/dev/null
fi

cat <<EOF

Shoal is running a one-node swarm on unix://$SHOAL_SOCK (log: $SHOAL_LOG).
Point the docker CLI at it with either of:

    docker context use shoal
    export DOCKER_HOST=unix://$SHOAL_SOCK

then, for example:

    docker node ls
    docker service create --name web --replicas 3 $TEST_IMAGE sleep 3600
    docker service ps web

Stop it with: bash scripts/setup.sh --stop
EOF
