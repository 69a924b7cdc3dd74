#!/usr/bin/env bash
# bench/run.sh — cartorio side by side with the tools a user would pick instead, on the same image,
# in one run. Prints each figure and the ratio (>1 means cartorio is better, for every row).
#
#   1. load: cartorio load of a docker-save tarball vs skopeo copy docker-archive: → oci:, vs the floor
#      (cp of the tarball + fsync, sha256sum of it); rootfs dir → image vs tar | sha256sum, tar | gzip -1,
#      tar | gzip -6 and tar | pigz -6 -p N, on 2 cores and on 1 (taskset -c 0)
#   2. blob GET of the largest layer: cartorio serve vs Debian's docker-registry (Distribution) vs nginx
#   3. manifest GET rate and p99 latency at c32 and c256: cartorio vs Distribution
#   4. N = 1, 8, 32 concurrent skopeo pulls of a whole image: cartorio vs Distribution
#   5. peak RSS of cartorio load and cartorio serve
# Start-up (cartorio --version, a small load; Node.js 20 vs 24, compile cache or not): bench/startup.sh.
#
# Env: RUNS (3) repetitions, alternating A/B order, medians reported; DURATION (10s) per wrk run;
# SECTIONS=load stops after section 1; SECTIONS=serve skips it (sections 2-5 only);
# C8_ROUNDS (12) and C8_DURATION (3s): the wrk -c8 rounds after section 2's table;
# SERVE_ARGS: more options for cartorio serve (e.g. "--workers 1"; the default is --workers auto);
# BENCH_DIR (/tmp/cartorio-bench) for the image and stores (the image is built once and kept).
# Only 127.0.0.1 is contacted; every server started here is stopped by PID on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/cartorio-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CART_PORT=${CART_PORT:-5401}; DIST_PORT=${DIST_PORT:-5402}; NGINX_PORT=${NGINX_PORT:-5403}
CLI="node $ROOT/dist/src/cli/main.js"
# SECTIONS=scale: the scale and fleet benches only (10 000 repositories, 100 000 tags, slow clients,
# 1 000 pulls: bench/scale.sh, with its own stores and env)
[ "${SECTIONS:-all}" = scale ] && exec bash "$ROOT/bench/scale.sh"
for t in umoci skopeo docker-registry nginx wrk curl jq openssl pigz taskset; do
  command -v $t >/dev/null || { echo "bench: missing $t: apt-get install -y umoci skopeo docker-registry nginx wrk curl jq openssl pigz util-linux time" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: missing /usr/bin/time: apt-get install -y time" >&2; exit 1; }
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "bench: run npm run build first" >&2; exit 1; }
mkdir -p "$W"

pids=()
cleanup() {
  local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$ROOT/test/helpers/start-distribution.sh" --stop "$DIST_PORT" >/dev/null 2>&1 || true
  rm -rf /dev/shm/cartorio-bench-pulls
}
trap cleanup EXIT

# ---------- the image: real files (usr/share docs, locales, man pages) + 150 MB incompressible data ----------
img=$W/image
if [ ! -f "$img/.done" ]; then
  echo "# building the bench image in $img (once)" >&2
  rm -rf "$img"; mkdir -p "$img/share/usr/share" "$img/data/opt/data"
  for d in doc locale man zoneinfo; do cp -a "/usr/share/$d" "$img/share/usr/share/"; done
  head -c 150M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:bench -pbkdf2 > "$img/data/opt/data/blob.bin"
  umoci init --layout "$img/oci" >/dev/null
  umoci new --image "$img/oci:1"
  umoci insert --image "$img/oci:1" "$img/share/usr" /usr >/dev/null
  umoci insert --image "$img/oci:1" "$img/data/opt" /opt >/dev/null
  umoci config --image "$img/oci:1" --config.cmd /bin/sh >/dev/null
  # the medium image for concurrent pulls: just the man pages
  umoci new --image "$img/oci:medium"
  umoci insert --image "$img/oci:medium" "/usr/share/man" /usr/share/man >/dev/null
  skopeo copy -q "oci:$img/oci:1" "docker-archive:$img/big-docker.tar:bench/big:1"
  touch "$img/.done"
fi
tarball=$img/big-docker.tar
tar_bytes=$(stat -c %s "$tarball")
# the same files as ONE layer: one big blob, hashed and written by one thread
single=$img/single-docker.tar
if [ ! -f "$single" ]; then
  umoci new --image "$img/oci:single"
  mkdir -p "$img/single-root"; cp -a "$img/share/usr" "$img/data/opt" "$img/single-root/"
  umoci insert --image "$img/oci:single" "$img/single-root" / >/dev/null
  rm -rf "$img/single-root"
  skopeo copy -q "oci:$img/oci:single" "docker-archive:$single.tmp:bench/single:1" && mv "$single.tmp" "$single"
fi

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'; }
now_ms() { date +%s%3N; }
# elapsed_ms CMD... — run CMD (quiet), print wall ms. Each starts after a sync (not timed): skopeo
# never fsyncs, and its dirty pages written back during the next measure made cp + fsync read
# 900-1400 ms instead of ~400.
elapsed_ms() { local s; sync; s=$(now_ms); "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; exit 1; }; echo $(( $(now_ms) - s )); }
row() { # LABEL CARTORIO PEER UNIT HIGHER_IS_BETTER(1|0) PEERNAME
  local ratio; if [ "$5" = 1 ]; then ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.2f", a/b}'); else ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.2f", b/a}'); fi
  printf '| %-44s | %10s %-5s | %-22s %10s | %5s× |\n' "$1" "$2" "$4" "$6" "$3" "$ratio"
}
header() { printf '\n%s\n| %-44s | %-16s | %-33s | %-6s |\n|%s|%s|%s|%s|\n' "$1" measure cartorio peer ratio "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..18})" "$(printf -- '-%.0s' {1..35})" "--------"; }

echo "# cartorio bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, node $(node --version), $RUNS runs (medians)"
echo "# image: docker-save tarball of $((tar_bytes / 1048576)) MB (usr/share docs+locales+man, 150 MB random), built by umoci + skopeo; the same files as one layer: $(( $(stat -c %s "$single") / 1048576 )) MB"

# ---------- 1. load ----------
if [ "${SECTIONS:-all}" != serve ]; then
declare -a L1_C L1_S L1_CP L1_SHA L_C L_S L_CP L_SHA L_DIR L_TAR L_TARW L_DIRGZ L_TARGZ L_TARGZ6 L_PIGZ2 L_DIRGZ1 L_TARGZ6_1 L_PIGZ1 RSS
# every measure reads the same inputs from the page cache: warm it once, then alternate orders
cat "$tarball" > /dev/null; tar -C "$img/share" -c . > /dev/null
# This VM's disk writes blocks the file system has just freed at ~1 GB/s and other blocks at
# ~270 MB/s (cp + fsync of 472 MB: 0.44 s after `rm` of an earlier copy, 1.7 s with it kept;
# docs/benchmarks.md, "Variance on this machine"). So every measure that writes removes its output
# (not timed) before the next one starts, and each writes where the one before it was: none inherits the other's
# luck. Every step also starts with a `sync` (not timed): cartorio's fsyncs must not pay for the
# writeback a peer left behind (skopeo writes without fsync), and no peer for cartorio's.
for r in $(seq "$RUNS"); do
  rm -rf "$W/s-c" "$W/s-sk" "$W/copy.tar" "$W/s-dir" "$W/s-dirgz" "$W/s-dirgz1" "$W/tar-copy.tar"; sync
  # cartorio, skopeo and cp each go first, second and third in turn
  orders=("c s p" "s p c" "p c s")
  for who in ${orders[$(( (r - 1) % 3 ))]}; do
    sync
    if [ $who = c ]; then
      s=$(now_ms); /usr/bin/time -f %M -o "$W/rss" $CLI load -q --store "$W/s-c" "$tarball"; L_C+=($(( $(now_ms) - s ))); RSS+=($(cat "$W/rss"))
    elif [ $who = s ]; then
      L_S+=($(elapsed_ms skopeo copy -q "docker-archive:$tarball" "oci:$W/s-sk:1"))
    else
      L_CP+=($(elapsed_ms bash -c "cp '$tarball' '$W/copy.tar' && sync '$W/copy.tar'"))
    fi
    rm -rf "$W/s-c" "$W/s-sk" "$W/copy.tar"
  done
  L_SHA+=($(elapsed_ms sha256sum "$tarball"))
  for who in ${orders[$(( (r - 1) % 3 ))]}; do
    sync
    if [ $who = c ]; then L1_C+=($(elapsed_ms $CLI load -q --store "$W/s1-c" "$single"))
    elif [ $who = s ]; then L1_S+=($(elapsed_ms skopeo copy -q "docker-archive:$single" "oci:$W/s1-sk:1"))
    else L1_CP+=($(elapsed_ms bash -c "cp '$single' '$W/copy1.tar' && sync '$W/copy1.tar'")); fi
    rm -rf "$W/s1-c" "$W/s1-sk" "$W/copy1.tar"
  done
  L1_SHA+=($(elapsed_ms sha256sum "$single"))
  for who in $([ $((r % 2)) = 1 ] && echo "c t" || echo "t c"); do
    if [ $who = c ]; then
      sync; L_DIR+=($(elapsed_ms $CLI load -q --store "$W/s-dir" "$img/share" --name bench/dir --compression none)); rm -rf "$W/s-dir"
      sync; L_DIRGZ+=($(elapsed_ms $CLI load -q --store "$W/s-dirgz" "$img/share" --name bench/dir))
      # one core: the gzip worker threads share it with the tar (the layer is the same bytes)
      sync; L_DIRGZ1+=($(elapsed_ms taskset -c 0 $CLI load -q --store "$W/s-dirgz1" "$img/share" --name bench/dir))
    else
      sync; L_TAR+=($(elapsed_ms bash -c "tar -C '$img/share' -c . | sha256sum"))
      sync; L_TARW+=($(elapsed_ms bash -c "tar -C '$img/share' -c . | tee '$W/tar-copy.tar' | sha256sum && sync '$W/tar-copy.tar'")); rm -f "$W/tar-copy.tar"
      L_TARGZ+=($(elapsed_ms bash -c "tar -C '$img/share' -c . | gzip -1 > /dev/null"))
      L_TARGZ6+=($(elapsed_ms bash -c "tar -C '$img/share' -c . | gzip -6 > /dev/null"))
      L_PIGZ2+=($(elapsed_ms taskset -c 0,1 bash -c "tar -C '$img/share' -c . | pigz -6 -p 2 > /dev/null"))
      L_TARGZ6_1+=($(elapsed_ms taskset -c 0 bash -c "tar -C '$img/share' -c . | gzip -6 > /dev/null"))
      L_PIGZ1+=($(elapsed_ms taskset -c 0 bash -c "tar -C '$img/share' -c . | pigz -6 -p 1 > /dev/null"))
    fi
  done
done
# the parallel gzip promises the same layer whatever the core count
[ "$(jq -r '.manifests[0].digest' "$W/s-dirgz/bench/dir/index.json")" = "$(jq -r '.manifests[0].digest' "$W/s-dirgz1/bench/dir/index.json")" ] \
  || { echo "bench: the gzip image packed on 1 core differs from the one packed on 2" >&2; exit 1; }
m() { printf '%s\n' "$@" | median; }
header "## 1. load (wall ms, lower is better)"
row "docker-save tarball: cartorio load vs skopeo" "$(m "${L_C[@]}")" "$(m "${L_S[@]}")" ms 0 "skopeo copy → oci:"
row "docker-save tarball: cartorio load vs cp+fsync" "$(m "${L_C[@]}")" "$(m "${L_CP[@]}")" ms 0 "cp + fsync"
row "docker-save tarball: cartorio load vs sha256sum" "$(m "${L_C[@]}")" "$(m "${L_SHA[@]}")" ms 0 "sha256sum"
row "single-layer tarball: cartorio load vs skopeo" "$(m "${L1_C[@]}")" "$(m "${L1_S[@]}")" ms 0 "skopeo copy → oci:"
row "single-layer tarball: cartorio load vs cp+fsync" "$(m "${L1_C[@]}")" "$(m "${L1_CP[@]}")" ms 0 "cp + fsync"
row "single-layer tarball: cartorio load vs sha256sum" "$(m "${L1_C[@]}")" "$(m "${L1_SHA[@]}")" ms 0 "sha256sum"
row "rootfs dir → uncompressed image vs tar|sha256sum" "$(m "${L_DIR[@]}")" "$(m "${L_TAR[@]}")" ms 0 "tar | sha256sum"
row "rootfs dir → uncompressed image vs tar|tee|sha256sum+fsync" "$(m "${L_DIR[@]}")" "$(m "${L_TARW[@]}")" ms 0 "tar | tee F | sha256sum"
row "rootfs dir → gzip image vs tar|gzip -1" "$(m "${L_DIRGZ[@]}")" "$(m "${L_TARGZ[@]}")" ms 0 "tar | gzip -1"
row "rootfs dir → gzip image vs tar|gzip -6" "$(m "${L_DIRGZ[@]}")" "$(m "${L_TARGZ6[@]}")" ms 0 "tar | gzip -6 (same level)"
row "rootfs dir → gzip image vs tar|pigz -6 -p 2" "$(m "${L_DIRGZ[@]}")" "$(m "${L_PIGZ2[@]}")" ms 0 "tar | pigz -6 -p 2"
row "1 core: rootfs dir → gzip image vs tar|gzip -6" "$(m "${L_DIRGZ1[@]}")" "$(m "${L_TARGZ6_1[@]}")" ms 0 "taskset -c 0 tar | gzip -6"
row "1 core: rootfs dir → gzip image vs tar|pigz -6 -p 1" "$(m "${L_DIRGZ1[@]}")" "$(m "${L_PIGZ1[@]}")" ms 0 "taskset -c 0 tar | pigz -p 1"
row "gzip image: 2 cores vs 1 core (scaling)" "$(m "${L_DIRGZ[@]}")" "$(m "${L_DIRGZ1[@]}")" ms 0 "cartorio on 1 core"
fi
[ "${SECTIONS:-all}" = load ] && exit 0
m() { printf '%s\n' "$@" | median; }
# peak RSS of serve: every process of it (the primary and its workers), each one's VmHWM and their
# sum. The sum counts twice what the processes share: the pages of the node binary they run
# (~50 MB each), so it is above the machine memory they take together (their summed Pss, printed too).
tree_hwm() { local p; for p in "$1" $(pgrep -P "$1"); do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done | awk '{s+=$1; a=a (NR>1 ? " + " : "") int($1/1024+0.5)} END {printf "%.0f MB (%s)", s/1024, a}'; }
tree_pss() { local p; for p in "$1" $(pgrep -P "$1"); do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup"; done | awk '{s+=$1} END {printf "%.0f", s/1024}'; }

# ---------- servers: cartorio, Distribution (seeded by skopeo), nginx (static files) ----------
store=$W/s-c
rm -rf "$store"
# --name: stored as bench/big (the tarball's own name, bench/big, is stored under docker.io/ since
# names keep their registry); the medium image is copied out of the layout, which holds three
[ -d "$img/oci-medium" ] || skopeo copy -q "oci:$img/oci:medium" "oci:$img/oci-medium:medium"
$CLI load -q --store "$store" "$tarball" --name bench/big --tag 1
$CLI load -q --store "$store" "$img/oci-medium" --name bench/medium --tag medium
$CLI load -q --store "$W/s-med" "$tarball" >/dev/null
rm -f "$W/ready"
$CLI serve --store "$store" --listen "127.0.0.1:$CART_PORT" --ready-file "$W/ready" --log-level error --quiet ${SERVE_ARGS:-} 2>"$W/serve.log" &
serve_pid=$!; pids+=("$serve_pid")
for _ in $(seq 100); do [ -s "$W/ready" ] && break; sleep 0.1; done
[ -s "$W/ready" ] || { echo "bench: cartorio serve did not start: $(tail -3 "$W/serve.log")" >&2; exit 1; }
dist_pid=$("$ROOT/test/helpers/start-distribution.sh" "$DIST_PORT" "$W/dist-data")
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$store/bench/big:1" "docker://127.0.0.1:$DIST_PORT/bench/big:1"
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$store/bench/medium:medium" "docker://127.0.0.1:$DIST_PORT/bench/medium:medium"
mdig=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="1") | .digest' "$store/bench/big/index.json")
blob=$(jq -r '.layers | max_by(.size) | .digest' "$store/bench/big/blobs/sha256/${mdig#sha256:}")
bsize=$(stat -c %s "$store/bench/big/blobs/sha256/${blob#sha256:}")
mkdir -p "$W/nginx"
cat > "$W/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path $W/nginx/body; proxy_temp_path $W/nginx/proxy; fastcgi_temp_path $W/nginx/fcgi;
  uwsgi_temp_path $W/nginx/uwsgi; scgi_temp_path $W/nginx/scgi;
  types { } default_type application/octet-stream;
  server { listen 127.0.0.1:$NGINX_PORT;
    location ~ "^/v2/bench/big/blobs/sha256:([0-9a-f]{64})\$" { alias $store/bench/big/blobs/sha256/\$1; } }
}
EOF
nginx -e "$W/nginx/error.log" -p "$W/nginx" -c "$W/nginx/nginx.conf" </dev/null >/dev/null 2>&1 &
pids+=($!)
c_blob="http://127.0.0.1:$CART_PORT/v2/bench/big/blobs/$blob"
d_blob="http://127.0.0.1:$DIST_PORT/v2/bench/big/blobs/$blob"
n_blob="http://127.0.0.1:$NGINX_PORT/v2/bench/big/blobs/$blob"
for _ in $(seq 50); do curl -fsS -o /dev/null "$n_blob" 2>/dev/null && break; sleep 0.1; done
for u in "$c_blob" "$d_blob" "$n_blob"; do
  [ "sha256:$(curl -fsS "$u" | sha256sum | cut -d' ' -f1)" = "$blob" ] || { echo "bench: wrong blob from $u" >&2; exit 1; }
done

wrk_mbs() { local out; out=$(wrk -c "$1" -t "$2" -d "${4:-$DURATION}" "$3"); grep -E 'Non-2xx|Socket errors' <<<"$out" >&2 || true
  awk '/^Transfer\/sec/ {v=$2; u=substr(v,length(v)-1); n=v+0; if (u=="GB") n*=1024; else if (u=="KB") n/=1024; printf "%.0f\n", n}' <<<"$out"; }
curl_mbs() { local i; for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{speed_download}\n' "$1"; done | median | awk '{printf "%.0f\n", $1/1048576}'; }
# measure3 FUNC ARGS... with the URL last, for cartorio, Distribution and nginx in alternating order
declare -A V
blob_measure() { # KEY FUNC ARGS-without-url
  local key=$1 fn=$2; shift 2; local r who u
  for r in $(seq "$RUNS"); do
    local order="c d n"; [ $((r % 2)) = 0 ] && order="n d c"
    for who in $order; do
      case $who in c) u=$c_blob;; d) u=$d_blob;; n) u=$n_blob;; esac
      V[$key-$who]+="$($fn "$@" "$u") "
    done
  done
}
blob_measure c1 wrk_mbs 1 1
blob_measure c4 wrk_mbs 4 2
blob_measure c8 wrk_mbs 8 2
blob_measure curl curl_mbs
mv_() { printf '%s\n' ${V[$1]} | median; }
header "## 2. blob GET of a $((bsize / 1048576)) MB layer over loopback (MB/s, higher is better)"
for k in c1 c4 c8 curl; do
  label="wrk -c${k#c} -t$([ $k = c1 ] && echo 1 || echo 2)"; [ $k = curl ] && label="curl, one download (median of 5)"
  row "$label vs Distribution" "$(mv_ $k-c)" "$(mv_ $k-d)" MB/s 1 "Distribution 2.8"
  row "$label vs nginx sendfile" "$(mv_ $k-c)" "$(mv_ $k-n)" MB/s 1 "nginx 1.22 sendfile"
done

# wrk -c8 again, in many short rounds, cartorio and Distribution in turn (both orders): one 10 s
# row moves by ±30% with what else the 2 cores run, so the ratio of each round's pair is what is
# summed up (median and range). With each round: the server's CPU seconds per GB sent (all its
# processes; utime + stime from /proc), and how the kernel spread wrk's 8 connections over serve's
# processes (SO_REUSEPORT hashes each to one; `ss` 1 s into the round).
cpu_ticks() { local p; for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s}'; }
c8_round() { # URL PID... → "MB/s cpu-s/GB"
  local url=$1 t0 mbs; shift; t0=$(cpu_ticks "$@")
  mbs=$(wrk_mbs 8 2 "$url" "$C8_DURATION")
  awk -v t="$(( $(cpu_ticks "$@") - t0 ))" -v m="$mbs" -v d="${C8_DURATION%s}" 'BEGIN {printf "%s %.2f\n", m, t / 100 / (m * d / 1024)}'
}
c8_split() { sleep 1; local p; for p in "$serve_pid" $(pgrep -P "$serve_pid"); do ss -tnp state established "( sport = :$CART_PORT )" | grep -c "pid=$p," || true; done | paste -sd/; }
C8_ROUNDS=${C8_ROUNDS:-12}; C8_DURATION=${C8_DURATION:-3s}
c8_ratios=(); c8_c=(); c8_d=(); c8_cc=(); c8_cd=(); c8_log=""; c8_load0=$(cut -d' ' -f1 /proc/loadavg)
c8_cartorio() { local sp; c8_split > "$W/c8-split" & sp=$!; c8_round "$c_blob" "$serve_pid" $(pgrep -P "$serve_pid"); wait "$sp"; }
for r in $(seq "$C8_ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then read -r c cc < <(c8_cartorio); read -r d dc < <(c8_round "$d_blob" "$dist_pid")
  else read -r d dc < <(c8_round "$d_blob" "$dist_pid"); read -r c cc < <(c8_cartorio); fi
  c8_c+=("$c"); c8_d+=("$d"); c8_cc+=("$cc"); c8_cd+=("$dc")
  c8_ratios+=("$(awk -v a="$c" -v b="$d" 'BEGIN {printf "%.2f", a / b}')")
  c8_log+="${c8_ratios[-1]}× ($(cat "$W/c8-split")) "
done
printf '\nwrk -c8 -t2, %s rounds of %s, cartorio and Distribution in turn: ratio median %s× (range %s-%s×); MB/s median %s vs %s;\n' \
  "$C8_ROUNDS" "$C8_DURATION" "$(m "${c8_ratios[@]}")" "$(printf '%s\n' "${c8_ratios[@]}" | sort -g | head -1)" "$(printf '%s\n' "${c8_ratios[@]}" | sort -g | tail -1)" "$(m "${c8_c[@]}")" "$(m "${c8_d[@]}")"
printf 'server CPU s per GB sent, median: %s vs %s; load average %s at the start, %s at the end\n' "$(m "${c8_cc[@]}")" "$(m "${c8_cd[@]}")" "$c8_load0" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'each round (connections per serve process): %s\n' "$c8_log"

# ---------- 3. manifest GET ----------
A='Accept: application/vnd.oci.image.manifest.v1+json'
wrk_man() { # C URL → "rps p99ms"
  local out; out=$(wrk -c "$1" -t 2 -d "$DURATION" --latency -H "$A" "$2"); grep -E 'Non-2xx|Socket errors' <<<"$out" >&2 || true
  awk '/^Requests\/sec/ {r=$2} /^ +99%/ {v=$2; if (v ~ /us$/) p=v/1000; else if (v ~ /ms$/) p=v+0; else p=(v+0)*1000} END {printf "%.0f %.2f\n", r, p}' <<<"$out"
}
header "## 3. manifest GET by tag (higher req/s, lower p99 is better)"
for c in 32 256; do
  rc=(); rd=(); pc=(); pd=()
  for r in $(seq "$RUNS"); do
    for who in $([ $((r % 2)) = 1 ] && echo "c d" || echo "d c"); do
      port=$([ $who = c ] && echo $CART_PORT || echo $DIST_PORT)
      read -r rps p99 < <(wrk_man "$c" "http://127.0.0.1:$port/v2/bench/big/manifests/1")
      if [ $who = c ]; then rc+=("$rps"); pc+=("$p99"); else rd+=("$rps"); pd+=("$p99"); fi
    done
  done
  row "wrk -c$c -t2 requests/s" "$(m "${rc[@]}")" "$(m "${rd[@]}")" req/s 1 "Distribution 2.8"
  row "wrk -c$c -t2 p99 latency" "$(m "${pc[@]}")" "$(m "${pd[@]}")" ms 0 "Distribution 2.8"
done

# ---------- 4. concurrent pulls ----------
msize=$(jq '[.layers[].size] | add' "$store/bench/medium/blobs/sha256/$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="medium") | .digest' "$store/bench/medium/index.json" | cut -d: -f2)")
pulls() { # PORT N — N parallel skopeo copies of the medium image into tmpfs, wall ms
  local port=$1 n=$2 i s; rm -rf /dev/shm/cartorio-bench-pulls; mkdir -p /dev/shm/cartorio-bench-pulls
  s=$(now_ms)
  for i in $(seq "$n"); do skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/bench/medium:medium" "dir:/dev/shm/cartorio-bench-pulls/$i" & done
  wait; echo $(( $(now_ms) - s )); rm -rf /dev/shm/cartorio-bench-pulls
}
header "## 4. concurrent skopeo pulls of a $((msize / 1048576)) MB image, total wall ms (lower is better)"
for n in 1 8 32; do
  pcart=(); pdist=()
  for r in $(seq "$RUNS"); do
    if [ $((r % 2)) = 1 ]; then pcart+=("$(pulls $CART_PORT "$n")"); pdist+=("$(pulls $DIST_PORT "$n")")
    else pdist+=("$(pulls $DIST_PORT "$n")"); pcart+=("$(pulls $CART_PORT "$n")"); fi
  done
  row "N=$n parallel pulls" "$(m "${pcart[@]}")" "$(m "${pdist[@]}")" ms 0 "Distribution 2.8"
done

# ---------- 5. memory ----------
serve_hwm=$(tree_hwm "$serve_pid"); serve_pss=$(tree_pss "$serve_pid")
echo
echo "## 5. peak RSS"
[ "${SECTIONS:-all}" = serve ] || echo "cartorio load of the $((tar_bytes / 1048576)) MB tarball: $(( $(m "${RSS[@]}") / 1024 )) MB (median of $RUNS, /usr/bin/time)"
echo "cartorio serve after sections 2-4 (blob GETs, manifest GETs at c256, 32 concurrent pulls): ${serve_hwm} (VmHWM summed over its $(( $(pgrep -c -P "$serve_pid") + 1 )) processes, and each); Pss now: ${serve_pss} MB"
