#!/usr/bin/env bash
# bench/bucket.sh — a bucket store against CNCF Distribution with its S3 driver, on one Ceph RGW
# (test/helpers/ceph-rgw.sh), same image, same machine, same run:
#   1. time until an image is pullable: `cartorio load --store s3://…` vs `skopeo copy` (push)
#   2. manifest GET by tag, 32 connections (wrk), requests/s
#   3. N concurrent pulls of one image through 2 replicas of each (blob GETs redirected to RGW by
#      both): wall time, errors, peak RSS per replica, bytes the registry processes wrote
# Usage: bash bench/bucket.sh [IMAGE.tar [PULL_IMAGE.tar]]   (defaults: .test-fixtures/big-layers-docker.tar
#        for 1 and 2, .test-fixtures/docker-save-busybox.tar for 3: 300 pulls of a 2 MB image)
# Env: RUNS (3) for 1, DURATION (10s) for 2, PULLS (300) for 3. Prints a table of ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-.test-fixtures/big-layers-docker.tar}
PULL_IMAGE=${2:-.test-fixtures/docker-save-busybox.tar}
RUNS=${RUNS:-3}; DURATION=${DURATION:-10s}; PULLS=${PULLS:-300}
CLI="node dist/src/cli/main.js"
work=$(mktemp -d /tmp/cartorio-bench-bucket.XXXXXX)
cleanup() { # the servers this script started, by the PIDs it recorded
  local pid
  for pid in $(cat "$work/pids" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  for pid in $(cat "$work/pids" 2>/dev/null); do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
  bash test/helpers/ceph-rgw.sh stop "$work/ceph" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
now_ms() { date +%s%3N; }

eval "$(bash test/helpers/ceph-rgw.sh start "$work/ceph" | sed 's/^/export /')"
export AWS_ENDPOINT_URL_S3=$S3_ENDPOINT AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
aws --endpoint-url "$S3_ENDPOINT" s3 mb s3://cartorio >/dev/null
aws --endpoint-url "$S3_ENDPOINT" s3 mb s3://distribution >/dev/null

start_distribution() { # PORT → PID; S3 driver on the same RGW (its blob GETs redirect to presigned URLs by default)
  local port=$1
  cat >"$work/dist-$port.yml" <<CONF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  s3:
    accesskey: $S3_ACCESS_KEY
    secretkey: $S3_SECRET_KEY
    region: us-east-1
    regionendpoint: $S3_ENDPOINT
    bucket: distribution
    secure: false
    v4auth: true
    rootdirectory: /registry
  maintenance: { uploadpurging: { enabled: false } }
http: { addr: 127.0.0.1:$port }
CONF
  # Its Go SDK panics on AWS_CA_BUNDLE with a custom transport; the endpoint is plain http anyway.
  env -u AWS_CA_BUNDLE setsid docker-registry serve "$work/dist-$port.yml" >"$work/dist-$port.log" 2>&1 </dev/null &
  echo "$!" >>"$work/pids"
  local deadline=$((SECONDS + 30))
  until curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; do
    [ $SECONDS -lt $deadline ] || { echo "bench: Distribution did not start: $(tail -3 "$work/dist-$port.log")" >&2; exit 1; }
    sleep 0.1
  done
  echo "$!"
}
start_cartorio() { # PORT → PID
  local port=$1
  setsid $CLI serve --store s3://cartorio/bench --listen "127.0.0.1:$port" --quiet --log-level error --ready-file "$work/ready-$port" </dev/null >/dev/null 2>"$work/cartorio-$port.log" &
  echo "$!" >>"$work/pids"
  local deadline=$((SECONDS + 30))
  until [ -s "$work/ready-$port" ]; do
    [ $SECONDS -lt $deadline ] || { echo "bench: cartorio serve did not start: $(tail -3 "$work/cartorio-$port.log")" >&2; exit 1; }
    sleep 0.1
  done
  echo "$!"
}

d1=$(free_port); d1pid=$(start_distribution "$d1")

echo "== 1. pullable: cartorio load vs skopeo push ($IMAGE, $RUNS runs, medians)" >&2
for run in $(seq "$RUNS"); do
  t0=$(now_ms); $CLI load --quiet --store "s3://cartorio/run$run" "$IMAGE" --name "bench/app" --tag 1 >/dev/null; echo $(( $(now_ms) - t0 )) >>"$work/load.ms"
  t0=$(now_ms); skopeo copy -q --dest-tls-verify=false "docker-archive:$IMAGE" "docker://127.0.0.1:$d1/run$run/app:1" >/dev/null; echo $(( $(now_ms) - t0 )) >>"$work/push.ms"
done
load_ms=$(median <"$work/load.ms"); push_ms=$(median <"$work/push.ms")

$CLI load --quiet --store s3://cartorio/bench "$IMAGE" --name bench/app --tag 1 >/dev/null
skopeo copy -q --dest-tls-verify=false "docker-archive:$IMAGE" "docker://127.0.0.1:$d1/bench/app:1" >/dev/null
$CLI load --quiet --store s3://cartorio/bench "$PULL_IMAGE" --name bench/small --tag 1 >/dev/null
skopeo copy -q --dest-tls-verify=false "docker-archive:$PULL_IMAGE" "docker://127.0.0.1:$d1/bench/small:1" >/dev/null
d2=$(free_port); d2pid=$(start_distribution "$d2")
c1=$(free_port); c1pid=$(start_cartorio "$c1")
c2=$(free_port); c2pid=$(start_cartorio "$c2")

echo "== 2. manifest GET by tag, c32, $DURATION" >&2
accept='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
rps() { wrk -t2 -c32 -d "$DURATION" -H "$accept" "$1" | awk '/Requests\/sec/ {print $2}'; }
c_rps=$(rps "http://127.0.0.1:$c1/v2/bench/app/manifests/1"); d_rps=$(rps "http://127.0.0.1:$d1/v2/bench/app/manifests/1")

echo "== 3. $PULLS concurrent pulls of $PULL_IMAGE through 2 replicas each" >&2
wchar() { awk '/^wchar/ {print $2}' "/proc/$1/io"; }
hwm() { awk '/^VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
pulls() { # PIDS (space separated) ADDRS...
  local p=$1; shift
  local before=0 after=0 pid
  for pid in $p; do before=$((before + $(wchar "$pid"))); done
  local out; out=$(node bench/bucket-pulls.mjs bench/small 1 "$PULLS" "$@")
  for pid in $p; do after=$((after + $(wchar "$pid"))); done
  echo "$out $(( (after - before) / 1000000 ))"
}
read -r c_wall c_err c_first c_mb <<<"$(pulls "$c1pid $c2pid" "127.0.0.1:$c1" "127.0.0.1:$c2")"
read -r d_wall d_err d_first d_mb <<<"$(pulls "$d1pid $d2pid" "127.0.0.1:$d1" "127.0.0.1:$d2")"
c_rss="$(hwm "$c1pid")/$(hwm "$c2pid")"; d_rss="$(hwm "$d1pid")/$(hwm "$d2pid")"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
size=$(stat -c %s "$IMAGE")
cat <<TABLE
bench/bucket.sh $(date -u +%FT%TZ), $(basename "$IMAGE") ($size bytes), Ceph RGW $(radosgw --version | awk '{print $3}'), Distribution $(docker-registry --version | awk '{print $3}')
| measure | cartorio (s3://) | Distribution (S3 driver) | ratio |
|---|---|---|---|
| pullable: load vs push (median of $RUNS) | ${load_ms} ms | ${push_ms} ms | $(ratio "$push_ms" "$load_ms")× sooner |
| manifest GET c32 | ${c_rps} req/s | ${d_rps} req/s | $(ratio "$c_rps" "$d_rps")× |
| $PULLS pulls of $(basename "$PULL_IMAGE"), 2 replicas: wall | ${c_wall} ms ($c_err errors) | ${d_wall} ms ($d_err errors) | $(ratio "$d_wall" "$c_wall")× |
| peak RSS per replica | ${c_rss} MB | ${d_rss} MB | |
| bytes written by the registry processes during the pulls | ${c_mb} MB | ${d_mb} MB | |
TABLE
[ "$c_err" = 0 ] || echo "cartorio first error: $c_first" >&2
[ "$d_err" = 0 ] || echo "Distribution first error: $d_first" >&2
