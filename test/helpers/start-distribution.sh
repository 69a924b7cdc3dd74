#!/usr/bin/env bash
# start-distribution.sh PORT DATADIR [--readonly]   start Debian's docker-registry (CNCF Distribution 2.8)
#                                                  on 127.0.0.1:PORT, filesystem storage in DATADIR;
#                                                  prints its PID on stdout.
# start-distribution.sh --stop PORT                stop the one this script started on PORT (by PID).
#
# State (config, pid file, log) lives in /tmp/harness-dist-PORT/. Idempotent: if the registry this
# script started on PORT is still up with the same DATADIR and mode, its PID is printed again; if it
# runs with other settings it is stopped (by its PID) and started anew. Never touches other processes.
# --readonly sets storage.maintenance.readonly (pushes/deletes answer 405 UNSUPPORTED) — the
# read-only peer to compare against. Env HTPASSWD=FILE turns on Basic auth from that (bcrypt)
# htpasswd file. Env TLS_CERT=FILE TLS_KEY=FILE serve HTTPS with that certificate.
# Install: apt-get install -y docker-registry
set -euo pipefail
usage() { echo "usage: $0 PORT DATADIR [--readonly] | $0 --stop PORT" >&2; exit 2; }
stop() { # PORT
  local st=/tmp/harness-dist-$1 pid
  [ -f "$st/pid" ] || return 0
  pid=$(cat "$st/pid")
  if kill -0 "$pid" 2>/dev/null && grep -q docker-registry "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$st/pid"
}
[ "${1:-}" = --stop ] && { [ -n "${2:-}" ] || usage; stop "$2"; exit 0; }
port=${1:-}; data=${2:-}; [ -n "$port" ] && [ -n "$data" ] || usage
ro=false; [ "${3:-}" = --readonly ] && ro=true
command -v docker-registry >/dev/null || { echo "missing docker-registry: apt-get install -y docker-registry" >&2; exit 1; }
mkdir -p "$data"; data=$(cd "$data" && pwd)
st=/tmp/harness-dist-$port; mkdir -p "$st"
htpasswd=${HTPASSWD:-}; [ -z "$htpasswd" ] || htpasswd=$(cd "$(dirname "$htpasswd")" && pwd)/$(basename "$htpasswd")
tls_cert=${TLS_CERT:-}; tls_key=${TLS_KEY:-}
want="$data $ro $htpasswd $tls_cert"
if [ -f "$st/pid" ] && kill -0 "$(cat "$st/pid")" 2>/dev/null && grep -q docker-registry "/proc/$(cat "$st/pid")/cmdline" 2>/dev/null; then
  if [ "$(cat "$st/settings" 2>/dev/null)" = "$want" ]; then cat "$st/pid"; exit 0; fi
  stop "$port"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is taken by another process" >&2; exit 1; fi
cat > "$st/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: $ro
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
EOF
if [ -n "$tls_cert" ]; then
  printf '  tls:\n    certificate: %s\n    key: %s\n' "$tls_cert" "$tls_key" >> "$st/config.yml"
fi
if [ -n "$htpasswd" ]; then
  printf 'auth:\n  htpasswd:\n    realm: cartorio-test\n    path: %s\n' "$htpasswd" >> "$st/config.yml"
fi
echo "$want" > "$st/settings"
setsid docker-registry serve "$st/config.yml" >"$st/log" 2>&1 </dev/null &
echo $! > "$st/pid"
for _ in $(seq 100); do
  # With auth on, /v2/ answers 401: any HTTP answer means it is up.
  scheme=http; [ -z "$tls_cert" ] || scheme=https
  if [ "$(curl -ksS -o /dev/null -w '%{http_code}' "$scheme://127.0.0.1:$port/v2/" 2>/dev/null)" != 000 ]; then cat "$st/pid"; exit 0; fi
  kill -0 "$(cat "$st/pid")" 2>/dev/null || break
  sleep 0.1
done
echo "docker-registry did not come up on 127.0.0.1:$port: $(tail -3 "$st/log")" >&2
stop "$port"; exit 1
