#!/usr/bin/env bash
# bench/scale.sh — cartorio at real size, against Debian's docker-registry (Distribution 2.8) over the
# same repositories in the same run: many repositories, many tags, many slow clients, many pulls at
# once. Ratio > 1 means cartorio is better, for every row.
#
#   a. full /v2/_catalog paging (n=1000, following Link) over 10 000 repositories, with the store's
#      .repositories list and without it (a store written by an older cartorio)
#   b. manifest GET of a random repository at c32 (wrk + bench/scale-random.lua): by the stored name
#      (the path Distribution answers), and as containerd/podman ask (?ns=HOST, or a host-less path)
#   c. one repository of 10 000 tags, each its own manifest: tags/list paging, GET by random tag at c32
#   d. server peak RSS (VmHWM) after a-c
#   e. 100 000 tags (10 such repositories): cartorio's RSS after touching them all
#   f. fleet: 300 `curl --limit-rate 2M` downloads of a 320 MB layer, cut at 30 s; server peak RSS
#   g. 1 000 concurrent pulls of a small image (bench/scale-pulls.mjs): errors, wall time, peak RSS
#
# The Distribution side is one skopeo push of a small umoci-built image whose repository link
# directories are copied 10 000 times; the cartorio side is one `cartorio load` of the same image
# copied with hard links, plus .repositories. Built once in $BENCH_DIR/scale (SCALE_REBUILD=1 anew).
# Env: RUNS (3, medians), DURATION (10s per wrk run), FLEET (300), FLEET_SECONDS (30), FLEET_RUNS (1: cartorio's
# fleet runs, the table showing the last; each run's peak is printed under it), PULLS (1000),
# SCALE_REPOS (10000), SCALE_TAGS (10000), BENCH_DIR (/tmp/cartorio-bench), SCALE_SECTIONS (abcdefg: the
# letters of the sections to run; d is the peak after whichever of a-c ran), CARTORIO (the CLI to
# measure: "node $ROOT/dist/src/cli/main.js"), SERVE_ARGS (more options for cartorio serve, e.g. "--workers 1").
# cartorio's RSS figures are summed over all its processes (the primary and its workers).
# Only 127.0.0.1 is contacted; every server started here is stopped by PID on exit.
# Run it as `flock /tmp/cartorio-heavy.lock bash bench/scale.sh` (or SECTIONS=scale bash bench/run.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/cartorio-bench}/scale
RUNS=${RUNS:-3}; DURATION=${DURATION:-10s}
FLEET=${FLEET:-300}; FLEET_SECONDS=${FLEET_SECONDS:-30}; PULLS=${PULLS:-1000}
NREPOS=${SCALE_REPOS:-10000}; NTAGS=${SCALE_TAGS:-10000}; TAGCOPIES=10
CART_PORT=${CART_PORT:-5411}; DIST_PORT=${DIST_PORT:-5412}
CLI=${CARTORIO:-node $ROOT/dist/src/cli/main.js}
SECTIONS_=${SCALE_SECTIONS:-abcdefg}
has() { [[ $SECTIONS_ == *"$1"* ]]; }
for t in umoci skopeo docker-registry wrk curl jq openssl; do
  command -v $t >/dev/null || { echo "bench: missing $t: apt-get install -y umoci skopeo docker-registry wrk curl jq openssl" >&2; exit 1; }
done
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "bench: run npm run build first" >&2; exit 1; }
[ "$(ulimit -n)" -ge 4096 ] || ulimit -n 65536
store=$W/store; dist=$W/dist
say() { echo "# $(date -u +%H:%M:%S) $*" >&2; }
T0=$(date +%s)

cart_pid=; pids=()
cleanup() {
  local p; for p in $cart_pid "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$ROOT/test/helpers/start-distribution.sh" --stop "$DIST_PORT" >/dev/null 2>&1 || true
  [ -f "$store/.repositories.off" ] && mv "$store/.repositories.off" "$store/.repositories"
  return 0
}
trap cleanup EXIT

# ---------- the stores (built once) ----------
key="$NREPOS $NTAGS $TAGCOPIES"
if [ "$(cat "$W/.done" 2>/dev/null)" != "$key" ] || [ -n "${SCALE_REBUILD:-}" ]; then
  say "building the stores in $W: $NREPOS repositories, $TAGCOPIES × $NTAGS tags (once)"
  rm -rf "$W"; mkdir -p "$W/tiny-root/bin" "$W/fleet-root/opt/data"
  # the small image: a few real binaries (~1.5 MB gzip), umoci-made
  cp /usr/bin/bash /usr/bin/ls /usr/bin/cat /usr/bin/cp /usr/bin/env /usr/bin/tar "$W/tiny-root/bin/"
  umoci init --layout "$W/tiny-oci" >/dev/null
  umoci new --image "$W/tiny-oci:1"
  umoci insert --image "$W/tiny-oci:1" "$W/tiny-root/bin" /bin >/dev/null
  umoci config --image "$W/tiny-oci:1" --config.cmd /bin/bash >/dev/null
  $CLI load -q --store "$store" "$W/tiny-oci" --name bench/tiny --tag 1
  # the fleet image: one 320 MB layer of random bytes
  head -c "${FLEET_MB:-320}M" /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:scale -pbkdf2 > "$W/fleet-root/opt/data/blob.bin"
  $CLI load -q --store "$store" "$W/fleet-root" --name bench/fleet --tag 1 --compression none
  rm -rf "$W/fleet-root"
  "$ROOT/test/helpers/start-distribution.sh" "$DIST_PORT" "$dist" >/dev/null
  for r in tiny fleet; do
    skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$store/bench/$r:1" "docker://127.0.0.1:$DIST_PORT/bench/$r:1"
  done
  "$ROOT/test/helpers/start-distribution.sh" --stop "$DIST_PORT"
  # varied names: Docker Hub orgs and official images, quay.io, registry.k8s.io, ghcr.io, host-less
  for i in $(seq 0 $((NREPOS - 1))); do
    case $((i % 10)) in
      0|5) echo "docker.io/org-$((i % 400))/app-$i";; 1|6) echo "quay.io/team-$((i % 300))/svc-$i";;
      2) echo "registry.k8s.io/sig-$((i % 50))/component-$i";; 7) echo "registry.k8s.io/pause-$i";;
      3|8) echo "ghcr.io/owner-$((i % 200))/tool-$i";; 4) echo "docker.io/library/lib-$i";;
      9) echo "internal/team-$((i % 100))/web-$i";;
    esac
  done > "$W/names"
  node "$ROOT/bench/scale-fixtures.mjs" repos "$store" "$dist" "$W/names"
  node "$ROOT/bench/scale-fixtures.mjs" tags "$store" "$dist" "$NTAGS" "$TAGCOPIES"
  # .repositories as a load writes it: every name, sorted (C collation, as JavaScript sorts)
  { cat "$W/names"; echo bench/tiny; echo bench/fleet; for c in $(seq 0 $((TAGCOPIES - 1))); do echo "bench/tags-$c"; done; } | LC_ALL=C sort > "$W/repositories"
  # request paths: by stored name; as containerd (?ns=HOST) or a host-less client asks; by tag
  sed 's|.*|/v2/&/manifests/1|' "$W/names" > "$W/paths-name"
  awk '{ n = split($0, p, "/"); host = p[1]; rest = substr($0, length(host) + 2)
         if (host !~ /\./) print "/v2/" $0 "/manifests/1"
         else if (NR % 2) { if (host == "docker.io" && rest ~ /^library\//) rest = substr(rest, 9); print "/v2/" rest "/manifests/1?ns=" host }
         else print "/v2/" rest "/manifests/1" }' "$W/names" > "$W/paths-ns"
  for i in $(seq 0 $((NTAGS - 1))); do printf '/v2/bench/tags-0/manifests/t-%05d\n' "$i"; done > "$W/paths-tags"
  for c in $(seq 0 $((TAGCOPIES - 1))); do sed "s|tags-0|tags-$c|" "$W/paths-tags"; done > "$W/paths-alltags"
  echo "$key" > "$W/.done"
  say "stores built in $(( $(date +%s) - T0 )) s"
fi
[ -f "$store/.repositories.off" ] && mv "$store/.repositories.off" "$store/.repositories"
cp "$W/repositories" "$store/.repositories"

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'; }
m() { printf '%s\n' "$@" | median; }
now_ms() { date +%s%3N; }
row() { # LABEL CARTORIO PEER UNIT HIGHER_IS_BETTER(1|0) PEERNAME
  local ratio; if [ "$5" = 1 ]; then ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.2f", a/b}'); else ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.2f", b/a}'); fi
  printf '| %-52s | %10s %-5s | %-18s %10s | %6s× |\n' "$1" "$2" "$4" "$6" "$3" "$ratio"
}
header() { printf '\n%s\n| %-52s | %-16s | %-29s | %-7s |\n|%s|%s|%s|%s|\n' "$1" measure cartorio peer ratio "$(printf -- '-%.0s' {1..54})" "$(printf -- '-%.0s' {1..18})" "$(printf -- '-%.0s' {1..31})" "---------"; }
# a process and its children (serve's workers), summed: for serve, the whole server's memory
tree() { local p; for p in "$2" $(pgrep -P "$2"); do awk -v k="$1:" '$1 == k {print $2}' "/proc/$p/status"; done | awk '{s+=$1} END {printf "%.0f\n", s/1024}'; }
hwm() { tree VmHWM "$1"; }
# each process's VmHWM ("A+B"): the sum counts twice the node binary's pages the processes share
hwm_each() { local p; for p in "$1" $(pgrep -P "$1"); do awk '$1 == "VmHWM:" {print $2}' "/proc/$p/status"; done | awk '{a=a (NR>1 ? "+" : "") int($1/1024+0.5)} END {print a}'; }
# Pss summed: the memory the processes take together, shared pages counted once
pss() { local p; for p in "$1" $(pgrep -P "$1"); do awk '$1 == "Pss:" {print $2}' "/proc/$p/smaps_rollup"; done | awk '{s+=$1} END {printf "%.0f\n", s/1024}'; }
rss() { tree VmRSS "$1"; }

start_servers() { # fresh processes: VmHWM then measures only what follows
  [ -n "$cart_pid" ] && { kill "$cart_pid"; wait "$cart_pid" 2>/dev/null || true; }
  rm -f "$W/ready"
  $CLI serve --store "$store" --listen "127.0.0.1:$CART_PORT" --ready-file "$W/ready" --log-level error --quiet ${SERVE_ARGS:-} 2>"$W/serve.log" &
  cart_pid=$!
  "$ROOT/test/helpers/start-distribution.sh" --stop "$DIST_PORT"
  dist_pid=$("$ROOT/test/helpers/start-distribution.sh" "$DIST_PORT" "$dist")
  for _ in $(seq 100); do [ -s "$W/ready" ] && break; sleep 0.1; done
  [ -s "$W/ready" ] || { echo "bench: cartorio serve did not start: $(tail -3 "$W/serve.log")" >&2; exit 1; }
}
C=http://127.0.0.1:$CART_PORT; D=http://127.0.0.1:$DIST_PORT
A='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'
check() { # URL — must answer 200 with a digest; prints it
  local d; d=$(curl -fsS -o /dev/null -D - -H "$A" "$1" | tr -d '\r' | awk 'tolower($1)=="docker-content-digest:" {print $2}')
  [ -n "$d" ] || { echo "bench: no manifest at $1" >&2; exit 1; }; echo "$d"
}
pages() { # BASE PATH → "ms pages entries" for a full paging following Link headers
  local base=$1 next=$2 n=0 s t key=$3; rm -rf "$W/pages"; mkdir -p "$W/pages"
  s=$(now_ms)
  while [ -n "$next" ]; do
    n=$((n + 1))
    next=$(curl -fsS -D - -o "$W/pages/$n" "$base$next" | tr -d '\r' | sed -nE 's/^[Ll]ink: *<([^>]*)>.*/\1/p')
  done
  t=$(( $(now_ms) - s ))
  echo "$t $n $(cat "$W/pages"/* | jq -s "[.[].$key | length] | add")"
}
wrk_random() { # BASE PATHS_FILE → "rps p99ms"
  local out; out=$(SCALE_PATHS=$2 wrk -c 32 -t 2 -d "$DURATION" --latency -H "$A" -s "$ROOT/bench/scale-random.lua" "$1")
  grep -E 'Non-2xx|Socket errors' <<<"$out" >&2 || true
  awk '/^Requests\/sec/ {r=$2} /^ +99%/ {v=$2; if (v ~ /us$/) p=v/1000; else if (v ~ /ms$/) p=v+0; else p=(v+0)*1000} END {printf "%.0f %.2f\n", r, p}' <<<"$out"
}
list_off() { mv "$store/.repositories" "$store/.repositories.off"; }
list_on() { mv "$store/.repositories.off" "$store/.repositories"; }

echo "# cartorio scale bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, node $(node --version), $RUNS runs (medians), wrk $DURATION"
echo "# $NREPOS repositories (+ bench/tiny, bench/fleet, bench/tags-0…$((TAGCOPIES - 1)) in cartorio, bench/tags-0 in Distribution), one small umoci image"
start_servers
# same answers from both, by every spelling
d1=$(check "$C$(head -1 "$W/paths-name")"); d2=$(check "$D$(head -1 "$W/paths-name")")
[ "$d1" = "$d2" ] || { echo "bench: digests differ: $d1 $d2" >&2; exit 1; }
for f in paths-ns paths-name; do for l in 1 2 3 5 10; do [ "$(check "$C$(sed -n "${l}p" "$W/$f")")" = "$d1" ] || exit 1; done; done
t1=$(sed -n 7p "$W/paths-tags"); [ "$(check "$C$t1")" = "$(check "$D$t1")" ] || { echo "bench: tag digests differ" >&2; exit 1; }

# ---------- a. catalog ----------
if has a; then
say "a. _catalog paging"
cl=(); co=(); cd_=()
for r in $(seq "$RUNS"); do
  for who in $([ $((r % 2)) = 1 ] && echo "c o d" || echo "d o c"); do
    case $who in
      c) read -r ms np ne < <(pages "$C" "/v2/_catalog?n=1000" repositories); cl+=("$ms"); cn=$ne; cp_=$np;;
      o) list_off; read -r ms np ne < <(pages "$C" "/v2/_catalog?n=1000" repositories); list_on; co+=("$ms"); on=$ne;;
      d) read -r ms np ne < <(pages "$D" "/v2/_catalog?n=1000" repositories); cd_+=("$ms"); dn=$ne; dp=$np;;
    esac
  done
done
header "## a. full _catalog paging, n=1000 (wall ms, lower is better)"
row "$cn names, $cp_ pages (cartorio) / $dn, $dp pages (Distr.)" "$(m "${cl[@]}")" "$(m "${cd_[@]}")" ms 0 "Distribution 2.8"
row "store without .repositories ($on names): walked" "$(m "${co[@]}")" "$(m "${cd_[@]}")" ms 0 "Distribution 2.8"
fi

# ---------- b. random repository ----------
if has b; then
say "b. random-repository manifest GET"
declare -A R P
for r in $(seq "$RUNS"); do
  for who in $([ $((r % 2)) = 1 ] && echo "c n o d" || echo "d o n c"); do
    case $who in
      c) read -r x y < <(wrk_random "$C" "$W/paths-name");;
      n) read -r x y < <(wrk_random "$C" "$W/paths-ns");;
      o) list_off; read -r x y < <(wrk_random "$C" "$W/paths-name"); list_on;;
      d) read -r x y < <(wrk_random "$D" "$W/paths-name");;
    esac
    R[$who]+="$x "; P[$who]+="$y "
  done
done
mr() { printf '%s\n' ${R[$1]} | median; }; mp() { printf '%s\n' ${P[$1]} | median; }
header "## b. manifest GET of a random one of $NREPOS repositories, wrk -c32 -t2 (higher req/s, lower p99 is better)"
row "by stored name (/v2/quay.io/team-1/svc-1/…): req/s" "$(mr c)" "$(mr d)" req/s 1 "Distribution 2.8"
row "by stored name: p99" "$(mp c)" "$(mp d)" ms 0 "Distribution 2.8"
row "as clients ask (?ns=HOST / host-less path): req/s" "$(mr n)" "$(mr d)" req/s 1 "Distr., stored name"
row "as clients ask: p99" "$(mp n)" "$(mp d)" ms 0 "Distr., stored name"
row "store without .repositories: req/s" "$(mr o)" "$(mr d)" req/s 1 "Distribution 2.8"
row "store without .repositories: p99" "$(mp o)" "$(mp d)" ms 0 "Distribution 2.8"
fi

# ---------- c. 10 000 tags ----------
if has c; then
say "c. a repository of $NTAGS tags"
tl=(); td=(); declare -A TR TP
for r in $(seq "$RUNS"); do
  for who in $([ $((r % 2)) = 1 ] && echo "c d" || echo "d c"); do
    base=$([ $who = c ] && echo "$C" || echo "$D")
    read -r ms np ne < <(pages "$base" "/v2/bench/tags-0/tags/list?n=1000" tags)
    if [ $who = c ]; then tl+=("$ms"); tcn="$ne tags, $np pages"; else td+=("$ms"); tdn="$ne, $np pages"; fi
    read -r x y < <(wrk_random "$base" "$W/paths-tags"); TR[$who]+="$x "; TP[$who]+="$y "
  done
done
header "## c. one repository of $NTAGS tags, each its own manifest"
row "tags/list paging n=1000: $tcn (Distr.: $tdn)" "$(m "${tl[@]}")" "$(m "${td[@]}")" ms 0 "Distribution 2.8"
row "manifest GET by random tag, wrk -c32: req/s" "$(printf '%s\n' ${TR[c]} | median)" "$(printf '%s\n' ${TR[d]} | median)" req/s 1 "Distribution 2.8"
row "manifest GET by random tag: p99" "$(printf '%s\n' ${TP[c]} | median)" "$(printf '%s\n' ${TP[d]} | median)" ms 0 "Distribution 2.8"
fi

# ---------- d. RSS ----------
if has d; then
header "## d. server peak RSS after a-c (MB, VmHWM, lower is better)"
row "serving $NREPOS repositories + $NTAGS tags" "$(hwm "$cart_pid")" "$(hwm "$dist_pid")" MB 0 "Distribution 2.8"
fi

# ---------- e. 100 000 tags ----------
if has e; then
say "e. $((TAGCOPIES * NTAGS)) tags"
s=$(now_ms)
for c in $(seq 0 $((TAGCOPIES - 1))); do
  got=$(curl -fsS "$C/v2/bench/tags-$c/tags/list" | jq '.tags | length')
  [ "$got" = "$NTAGS" ] || { echo "bench: bench/tags-$c lists $got tags" >&2; exit 1; }
done
first=$(( $(now_ms) - s ))
read -r x y < <(wrk_random "$C" "$W/paths-alltags")
echo
echo "## e. $((TAGCOPIES * NTAGS)) tags ($TAGCOPIES repositories × $NTAGS, each tag its own manifest)"
echo "first full tags/list of all $TAGCOPIES: $first ms; then random manifest GET over all of them, wrk -c32 $DURATION: $x req/s, p99 $y ms"
echo "cartorio serve RSS now: $(rss "$cart_pid") MB, peak $(hwm "$cart_pid") MB (target ≤ 200 MB)"
# a pull also GETs blobs: the server then knows every blob each repository's manifests reach
cfg=$(curl -fsS -H "$A" "$C/v2/bench/tags-0/manifests/t-00000" | jq -r .config.digest)
s=$(now_ms)
for c in $(seq 0 $((TAGCOPIES - 1))); do curl -fsS -o /dev/null "$C/v2/bench/tags-$c/blobs/$cfg"; done
echo "then one blob GET in each of the $TAGCOPIES (the server reads what all $((TAGCOPIES * NTAGS)) manifests reference): $(( $(now_ms) - s )) ms; RSS now: $(rss "$cart_pid") MB, peak $(hwm "$cart_pid") MB"
fi

# ---------- f. fleet ----------
if has f; then
fdig=$(jq -r '.manifests[0].digest' "$store/bench/fleet/index.json")
blob=$(jq -r '.layers | max_by(.size) | .digest' "$store/bench/fleet/blobs/sha256/${fdig#sha256:}")
bsize=$(stat -c %s "$store/bench/fleet/blobs/sha256/${blob#sha256:}")
one_mbs() { local i; for i in 1 2 3; do curl -fsS -o /dev/null -w '%{speed_download}\n' "$1"; done | median | awk '{printf "%.0f\n", $1/1048576}'; }
fleet() { # BASE → "peakRSS_MB MB_sent ok_or_cut errors peakRSS_each Pss_MB"
  local base=$1 pid=$2 i cpids=(); rm -rf "$W/fleet"; mkdir -p "$W/fleet"
  for i in $(seq "$FLEET"); do
    curl -sS --limit-rate 2M --max-time "$FLEET_SECONDS" -o /dev/null -w '%{http_code} %{size_download}\n' "$base/v2/bench/fleet/blobs/$blob" >"$W/fleet/$i" 2>/dev/null &
    cpids+=($!)
  done
  sleep $(( FLEET_SECONDS > 5 ? FLEET_SECONDS - 3 : 1 )); local now; now=$(pss "$pid")  # while the clients still download
  wait "${cpids[@]}" || true  # curl exits 28 when --max-time cuts it: expected
  local each; each=$(hwm_each "$pid")
  awk -v p="$(hwm "$pid")" -v each="$each" -v now="$now" '{n++; b+=$2; if ($1 != 200) e++} END {printf "%s %.0f %d %d %s %s\n", p, b/1048576, n-e, e, each, now}' "$W/fleet"/*
}
say "f. fleet: $FLEET × curl --limit-rate 2M of a $((bsize / 1048576)) MB layer, ${FLEET_SECONDS} s each"
start_servers
one_c=$(one_mbs "$C/v2/bench/fleet/blobs/$blob"); one_d=$(one_mbs "$D/v2/bench/fleet/blobs/$blob")
# cartorio's fleet FLEET_RUNS times, each on a fresh server: the peak moves by ±5 MB from run to run
fc_all=()
for _ in $(seq "${FLEET_RUNS:-1}"); do
  start_servers
  read -r fc_rss fc_mb fc_ok fc_err fc_each fc_pss < <(fleet "$C" "$cart_pid")
  fc_all+=("$fc_rss ($fc_each, $(cut -d' ' -f1 /proc/loadavg))")
done
read -r fd_rss fd_mb fd_ok fd_err fd_each fd_pss < <(fleet "$D" "$dist_pid")
header "## f. fleet: $FLEET clients × curl --limit-rate 2M of a $((bsize / 1048576)) MB layer, cut at ${FLEET_SECONDS} s"
row "server peak RSS (fresh server; VmHWM)" "$fc_rss" "$fd_rss" MB 0 "Distribution 2.8"
row "MB delivered in ${FLEET_SECONDS} s (non-200 answers: $fc_err / $fd_err)" "$fc_mb" "$fd_mb" MB 1 "Distribution 2.8"
row "one unlimited curl of the layer (median of 3)" "$one_c" "$one_d" MB/s 1 "Distribution 2.8"
echo "cartorio peak RSS per process: $fc_each MB; Pss summed near the end: $fc_pss MB (Distribution: $fd_pss MB); load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "${FLEET_RUNS:-1}" -gt 1 ] && echo "cartorio peak RSS in each of $FLEET_RUNS runs, MB (per process, load average after): ${fc_all[*]}"
fi

# ---------- g. 1 000 pulls ----------
if has g; then
say "g. $PULLS concurrent pulls of bench/tiny"
tsize=$(jq '[.layers[].size] | add' "$store/bench/tiny/blobs/sha256/$(jq -r '.manifests[0].digest' "$store/bench/tiny/index.json" | cut -d: -f2)")
start_servers
read -r gc_ms gc_err gc_first < <(node "$ROOT/bench/scale-pulls.mjs" "$CART_PORT" bench/tiny 1 "$PULLS"); gc_rss=$(hwm "$cart_pid")
read -r gd_ms gd_err gd_first < <(node "$ROOT/bench/scale-pulls.mjs" "$DIST_PORT" bench/tiny 1 "$PULLS"); gd_rss=$(hwm "$dist_pid")
header "## g. $PULLS concurrent pulls of a $((tsize / 1024)) KB image (/v2/, manifest, config, layers; one connection each)"
row "wall ms (errors: cartorio $gc_err, Distribution $gd_err)" "$gc_ms" "$gd_ms" ms 0 "Distribution 2.8"
row "server peak RSS (fresh server; VmHWM)" "$gc_rss" "$gd_rss" MB 0 "Distribution 2.8"
[ "$gc_err" = 0 ] || echo "cartorio first error: $gc_first"
[ "$gd_err" = 0 ] || echo "Distribution first error: $gd_first"
fi
say "scale section done in $(( $(date +%s) - T0 )) s"
