#!/usr/bin/env bash
# bench/serve-archive.sh — a tarball served in place (`cartorio serve IMAGE.tar`) against the other
# ways to get a pullable registry out of the same tarball, in one run (run under the heavy lock:
# flock /tmp/cartorio-heavy.lock bash bench/serve-archive.sh).
#
#   ready:  ms from starting the command to the first successful `skopeo inspect`
#   copied: ms from starting the command to a complete `skopeo copy docker://… dir:`
#   for: cartorio serve IMAGE.tar | cartorio load + cartorio serve --store | skopeo copy
#        docker-archive: → Distribution (already running: its start-up is not counted)
#   plus: ready time of a 2 MB tarball vs the big one; blob GET (curl) of the largest layer from
#   the tarball (first GET: hashed while streaming; later GETs: proven) vs from the store; peak RSS.
#
# Env: TARBALL (default: bench/run.sh's 472 MB image if built, else one built here), RUNS (3),
# BENCH_DIR (/tmp/cartorio-bench-serve). Only 127.0.0.1 is contacted; servers are stopped by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/cartorio-bench-serve}
RUNS=${RUNS:-3}
PORT=${PORT:-5411}; DIST_PORT=${DIST_PORT:-5412}
CLI="node $ROOT/dist/src/cli/main.js"
for t in skopeo docker-registry curl jq openssl umoci; do command -v $t >/dev/null || { echo "bench: missing $t" >&2; exit 1; }; done
mkdir -p "$W"
pids=()
cleanup() {
  local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$ROOT/test/helpers/start-distribution.sh" --stop "$DIST_PORT" >/dev/null 2>&1 || true
}
trap cleanup EXIT

big=${TARBALL:-/tmp/cartorio-bench/image/big-docker.tar}
if [ ! -f "$big" ]; then
  big=$W/big-docker.tar
  if [ ! -f "$big" ]; then
    echo "# building a 400 MB docker-archive in $W (once)" >&2
    rm -rf "$W/img"; mkdir -p "$W/img/a/opt" "$W/img/b/srv"
    head -c 250M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:a -pbkdf2 > "$W/img/a/opt/a.bin"
    head -c 150M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:b -pbkdf2 > "$W/img/b/srv/b.bin"
    umoci init --layout "$W/img/oci" >/dev/null; umoci new --image "$W/img/oci:1"
    umoci insert --image "$W/img/oci:1" "$W/img/a/opt" /opt >/dev/null
    umoci insert --image "$W/img/oci:1" "$W/img/b/srv" /srv >/dev/null
    skopeo copy -q "oci:$W/img/oci:1" "docker-archive:$big:bench/big:1"
    rm -rf "$W/img"
  fi
fi
small=$ROOT/.test-fixtures/docker-save-busybox.tar
[ -f "$small" ] || { echo "bench: run test/setup.sh first (needs .test-fixtures)" >&2; exit 1; }
ref_of() { jq -r '.[0].RepoTags[0]' <(tar -xOf "$1" manifest.json); }

now_ms() { date +%s%3N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'; }
# until_inspect START REF: polls skopeo inspect; prints ms since START at the first success
until_inspect() {
  local i; for i in $(seq 2000); do
    skopeo inspect --tls-verify=false "docker://$2" >/dev/null 2>&1 && { echo $(( $(now_ms) - $1 )); return; }
    sleep 0.01
  done; echo "bench: $2 never became ready" >&2; exit 1
}
copy_ms() { rm -rf "$W/copy"; skopeo copy -q --src-tls-verify=false "docker://$2" "dir:$W/copy" >/dev/null; echo $(( $(now_ms) - $1 )); }
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

# mode TARBALL → "ready copied" for each way
serve_in_place() {
  local s pid r c; sync; s=$(now_ms)
  $CLI serve --quiet --log-level warn --listen "127.0.0.1:$PORT" "$1" & pid=$!; pids+=($pid)
  r=$(until_inspect "$s" "127.0.0.1:$PORT/$2"); c=$(copy_ms "$s" "127.0.0.1:$PORT/$2")
  hwm=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status"); stop $pid; echo "$r $c $hwm"
}
load_then_serve() {
  local s pid r c; rm -rf "$W/store"; sync; s=$(now_ms)
  $CLI load -q --store "$W/store" "$1" >/dev/null
  $CLI serve --quiet --log-level warn --listen "127.0.0.1:$PORT" --store "$W/store" & pid=$!; pids+=($pid)
  r=$(until_inspect "$s" "127.0.0.1:$PORT/$2"); c=$(copy_ms "$s" "127.0.0.1:$PORT/$2"); stop $pid; echo "$r $c"
}
push_to_distribution() {
  local s r c; sync; s=$(now_ms)
  skopeo copy -q --dest-tls-verify=false "docker-archive:$1" "docker://127.0.0.1:$DIST_PORT/$2" >/dev/null
  r=$(until_inspect "$s" "127.0.0.1:$DIST_PORT/$2"); c=$(copy_ms "$s" "127.0.0.1:$DIST_PORT/$2"); echo "$r $c"
}

big_ref=$(ref_of "$big"); big_ref=${big_ref#docker.io/}
small_ref=$(ref_of "$small"); small_ref=${small_ref#docker.io/}
echo "# cartorio serve IMAGE.tar — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, node $(node --version), $RUNS runs (medians)"
echo "# big: $big ($(( $(stat -c %s "$big") / 1048576 )) MB, $big_ref); small: $small ($(( $(stat -c %s "$small") / 1024 )) KB)"
declare -a IP_R IP_C LS_R LS_C D_R D_C SM_R HWM
cat "$big" "$small" > /dev/null
for r in $(seq "$RUNS"); do
  rm -rf "$W/dist-data"; "$ROOT/test/helpers/start-distribution.sh" "$DIST_PORT" "$W/dist-data" >/dev/null
  read -r a b h < <(serve_in_place "$big" "$big_ref"); IP_R+=("$a"); IP_C+=("$b"); HWM+=("$h")
  read -r a b < <(load_then_serve "$big" "$big_ref"); LS_R+=("$a"); LS_C+=("$b")
  read -r a b < <(push_to_distribution "$big" "$big_ref"); D_R+=("$a"); D_C+=("$b")
  read -r a _ _ < <(serve_in_place "$small" "$small_ref"); SM_R+=("$a")
  "$ROOT/test/helpers/start-distribution.sh" --stop "$DIST_PORT" >/dev/null
  echo "# run $r: in place ${IP_R[-1]}/${IP_C[-1]} ms; load+serve ${LS_R[-1]}/${LS_C[-1]} ms; Distribution ${D_R[-1]}/${D_C[-1]} ms; small in place ${SM_R[-1]} ms" >&2
done
m() { printf '%s\n' "$@" | median; }
ipr=$(m "${IP_R[@]}"); ipc=$(m "${IP_C[@]}"); lsr=$(m "${LS_R[@]}"); lsc=$(m "${LS_C[@]}"); dr=$(m "${D_R[@]}"); dc=$(m "${D_C[@]}"); smr=$(m "${SM_R[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo
echo "| measure | serve IMAGE.tar | peer | ratio |"
echo "|---|---|---|---|"
echo "| ready (first skopeo inspect) | $ipr ms | load + serve: $lsr ms | $(ratio "$lsr" "$ipr")× |"
echo "| ready | $ipr ms | skopeo copy → Distribution: $dr ms | $(ratio "$dr" "$ipr")× |"
echo "| complete skopeo copy | $ipc ms | load + serve: $lsc ms | $(ratio "$lsc" "$ipc")× |"
echo "| complete skopeo copy | $ipc ms | skopeo copy → Distribution: $dc ms | $(ratio "$dc" "$ipc")× |"
echo "| ready, big tarball vs 2 MB tarball | $ipr ms | $smr ms | $(ratio "$ipr" "$smr")× (target ≤ 1.3) |"
echo "| peak RSS of serve IMAGE.tar after the copy | $(m "${HWM[@]}") MB | | |"

# ---------- blob GET of the largest layer: tarball vs store ----------
rm -rf "$W/store"; $CLI load -q --store "$W/store" "$big" >/dev/null
$CLI serve --quiet --log-level warn --listen "127.0.0.1:$PORT" "$big" & tp=$!; pids+=($tp)
$CLI serve --quiet --log-level warn --listen "127.0.0.1:$((PORT + 2))" --store "$W/store" & sp=$!; pids+=($sp)
until_inspect "$(now_ms)" "127.0.0.1:$PORT/$big_ref" >/dev/null; until_inspect "$(now_ms)" "127.0.0.1:$((PORT + 2))/$big_ref" >/dev/null
repo=${big_ref%:*}; tag=${big_ref##*:}
layer=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$PORT/v2/$repo/manifests/$tag" | jq -r '.layers | max_by(.size) | .digest')
first=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$PORT/v2/$repo/blobs/$layer" | awk '{printf "%.0f", $1/1048576}')
declare -a T S
for i in $(seq 5); do
  T+=("$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$PORT/v2/$repo/blobs/$layer")")
  S+=("$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$((PORT + 2))/v2/$repo/blobs/$layer")")
done
t=$(m "${T[@]}" | awk '{printf "%.0f", $1/1048576}'); s=$(m "${S[@]}" | awk '{printf "%.0f", $1/1048576}')
echo "| blob GET (curl, median of 5), proven | $t MB/s | from the store: $s MB/s | $(ratio "$t" "$s")× |"
echo "| blob GET, first (hashed while it streams) | $first MB/s | from the store: $s MB/s | $(ratio "$first" "$s")× |"
