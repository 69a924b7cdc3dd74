#!/usr/bin/env bash
# bench/serve-archive.sh — a tarball served in place (`cartorio serve IMAGE.tar`) against the other
# ways to get a pullable registry out of the same tarball, in one run (run under the heavy lock:
# flock /tmp/cartorio-heavy.lock bash bench/serve-archive.sh).
#
#   ready:  ms from starting the command to the first successful `skopeo inspect`
#   copied: ms from starting the command to a complete `skopeo copy docker://… dir:`
#   for: cartorio serve IMAGE.tar | cartorio load + cartorio serve --store | skopeo copy
#        docker-archive: → Distribution (already running: its start-up is not counted)
#   plus: ready time of a 2 MB tarball vs the big one; the same ready times for a 1 GB tarball;
#   each with the CLI from dist/ (npm's bin) and the esbuild bundle (what the resource image and
#   the bundle_server launcher run); blob GET (curl) of the largest layer from the tarball (first
#   GET: hashed while streaming; later GETs: proven) vs from the store, alternating; "memory flat":
#   50 tarballs of 200 layers served in place vs the same images loaded into a store and served,
#   after the same pulls: peak RSS and start-up.
#   floor: the ready time of a bare node:http server answering one skopeo inspect from memory, the
#   floor under `serve`'s, against the bundled `serve IMAGE.tar`, `load` alone and `node -e 0`.
#
# "ready" polls as a client would: `skopeo inspect` is re-run 10 ms after each failed attempt (a
# failing one takes ~65 ms, mostly skopeo's own start), the same for every way measured. Polling the
# port first and then running one skopeo inspect was weighed and not taken: it adds
# skopeo's start-up after readiness on every side (~20 ms later on average) and changes no ratio's
# meaning.
#
# Env: TARBALL (default: bench/run.sh's 472 MB image if built, else one built here), RUNS (3),
# SECTIONS ("ready gig blob many floor"), MANY (50), MANY_LAYERS (200), SERVE_ARGS (more options for
# every cartorio serve, e.g. "--workers 1"; peak RSS is summed over serve's processes),
# BENCH_DIR (/tmp/cartorio-bench-serve). Only 127.0.0.1 is contacted; servers are stopped by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/cartorio-bench-serve}
RUNS=${RUNS:-3}
PORT=${PORT:-5411}; DIST_PORT=${DIST_PORT:-5412}
SECTIONS=${SECTIONS:-ready gig blob many floor}
DIST_CLI="node $ROOT/dist/src/cli/main.js"
BUNDLE_CLI="node $ROOT/dist/bundle/cartorio/dist/src/cli/main.mjs"
CLI=$DIST_CLI
[ -f "$ROOT/dist/bundle/cartorio/dist/src/cli/main.mjs" ] || { echo "bench: run npm run build first (it writes dist/bundle)" >&2; exit 1; }
has() { [[ " $SECTIONS " == *" $1 "* ]]; }
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
# peak RSS of a process and its children (serve's workers), summed
tree_hwm() { local p; for p in "$1" $(pgrep -P "$1"); do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done | awk '{s+=$1} END {printf "%.0f", s/1024}'; }
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

# mode TARBALL REF [ready] → "ready copied" for each way ("ready": no copy, copied = 0)
serve_in_place() {
  local s pid r c=0; sync; s=$(now_ms)
  $CLI serve --quiet --log-level warn --listen "127.0.0.1:$PORT" ${SERVE_ARGS:-} "$1" & pid=$!; pids+=($pid)
  r=$(until_inspect "$s" "127.0.0.1:$PORT/$2"); [ "${3:-}" = ready ] || c=$(copy_ms "$s" "127.0.0.1:$PORT/$2")
  hwm=$(tree_hwm "$pid"); stop $pid; echo "$r $c $hwm"
}
load_then_serve() {
  local s pid r c=0; rm -rf "$W/store"; sync; s=$(now_ms)
  $CLI load -q --store "$W/store" "$1" >/dev/null
  $CLI serve --quiet --log-level warn --listen "127.0.0.1:$PORT" ${SERVE_ARGS:-} --store "$W/store" & pid=$!; pids+=($pid)
  r=$(until_inspect "$s" "127.0.0.1:$PORT/$2"); [ "${3:-}" = ready ] || c=$(copy_ms "$s" "127.0.0.1:$PORT/$2"); stop $pid; echo "$r $c"
}
push_to_distribution() {
  local s r c; sync; s=$(now_ms)
  skopeo copy -q --dest-tls-verify=false "docker-archive:$1" "docker://127.0.0.1:$DIST_PORT/$2" >/dev/null
  r=$(until_inspect "$s" "127.0.0.1:$DIST_PORT/$2"); c=$(copy_ms "$s" "127.0.0.1:$DIST_PORT/$2"); echo "$r $c"
}
m() { printf '%s\n' "$@" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

big_ref=$(ref_of "$big"); big_ref=${big_ref#docker.io/}
small_ref=$(ref_of "$small"); small_ref=${small_ref#docker.io/}
echo "# cartorio serve IMAGE.tar — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, node $(node --version), $RUNS runs (medians); $(uptime)"
echo "# big: $big ($(( $(stat -c %s "$big") / 1048576 )) MB, $big_ref); small: $small ($(( $(stat -c %s "$small") / 1024 )) KB)"
echo "# CLI: dist = node dist/src/cli/main.js (npm's bin); bundle = node dist/bundle/cartorio/dist/src/cli/main.mjs (the resource image's and the launcher's cartorio)"
cat "$big" "$small" > /dev/null
echo
echo "| measure | serve IMAGE.tar | peer | ratio |"
echo "|---|---|---|---|"

# ---------- ready and complete copy, 472 MB: in place vs load + serve vs Distribution ----------
if has ready; then
  declare -a IP_R IP_C LS_R LS_C D_R D_C SM_R HWM BIP_R BLS_R BSM_R
  for r in $(seq "$RUNS"); do
    rm -rf "$W/dist-data"; "$ROOT/test/helpers/start-distribution.sh" "$DIST_PORT" "$W/dist-data" >/dev/null
    CLI=$DIST_CLI
    read -r a b h < <(serve_in_place "$big" "$big_ref"); IP_R+=("$a"); IP_C+=("$b"); HWM+=("$h")
    read -r a b < <(load_then_serve "$big" "$big_ref"); LS_R+=("$a"); LS_C+=("$b")
    read -r a b < <(push_to_distribution "$big" "$big_ref"); D_R+=("$a"); D_C+=("$b")
    read -r a _ _ < <(serve_in_place "$small" "$small_ref"); SM_R+=("$a")
    CLI=$BUNDLE_CLI
    read -r a _ _ < <(serve_in_place "$big" "$big_ref" ready); BIP_R+=("$a")
    read -r a _ < <(load_then_serve "$big" "$big_ref" ready); BLS_R+=("$a")
    read -r a _ _ < <(serve_in_place "$small" "$small_ref" ready); BSM_R+=("$a")
    "$ROOT/test/helpers/start-distribution.sh" --stop "$DIST_PORT" >/dev/null
    echo "# run $r: in place ${IP_R[-1]}/${IP_C[-1]} ms; load+serve ${LS_R[-1]}/${LS_C[-1]} ms; Distribution ${D_R[-1]}/${D_C[-1]} ms; small in place ${SM_R[-1]} ms; bundle: in place ${BIP_R[-1]}, load+serve ${BLS_R[-1]}, small ${BSM_R[-1]} ms" >&2
  done
  ipr=$(m "${IP_R[@]}"); ipc=$(m "${IP_C[@]}"); lsr=$(m "${LS_R[@]}"); lsc=$(m "${LS_C[@]}"); dr=$(m "${D_R[@]}"); dc=$(m "${D_C[@]}"); smr=$(m "${SM_R[@]}")
  bipr=$(m "${BIP_R[@]}"); blsr=$(m "${BLS_R[@]}"); bsmr=$(m "${BSM_R[@]}")
  echo "| ready (first skopeo inspect), $(( $(stat -c %s "$big") / 1048576 )) MB | $ipr ms | load + serve: $lsr ms | $(ratio "$lsr" "$ipr")× |"
  echo "| ready, bundled CLI | $bipr ms | load + serve, bundled: $blsr ms | $(ratio "$blsr" "$bipr")× |"
  echo "| ready | $ipr ms | skopeo copy → Distribution: $dr ms | $(ratio "$dr" "$ipr")× |"
  echo "| complete skopeo copy | $ipc ms | load + serve: $lsc ms | $(ratio "$lsc" "$ipc")× |"
  echo "| complete skopeo copy | $ipc ms | skopeo copy → Distribution: $dc ms | $(ratio "$dc" "$ipc")× |"
  echo "| ready, big tarball vs 2 MB tarball | $ipr ms | $smr ms | $(ratio "$ipr" "$smr")× (target ≤ 1.3) |"
  echo "| ready, big vs 2 MB, bundled CLI | $bipr ms | $bsmr ms | $(ratio "$bipr" "$bsmr")× (target ≤ 1.3) |"
  echo "| peak RSS of serve IMAGE.tar after the copy | $(m "${HWM[@]}") MB | | |"
fi

# ---------- ready at 1 GB: in place vs load + serve (ready only) ----------
if has gig; then
  gig=${GIG_TARBALL:-${BENCH_ROOT:-/tmp/cartorio-bench}/image-1g/gig-docker.tar}
  if [ ! -f "$gig" ]; then
    echo "# building a 1 GB docker-archive in $(dirname "$gig") (once): 3 random layers, openssl + umoci + skopeo" >&2
    g=$(dirname "$gig")/build; rm -rf "$g"; mkdir -p "$g/a/opt" "$g/b/srv" "$g/c/var"
    head -c 400M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:g1 -pbkdf2 > "$g/a/opt/a.bin"
    head -c 300M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:g2 -pbkdf2 > "$g/b/srv/b.bin"
    head -c 300M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:g3 -pbkdf2 > "$g/c/var/c.bin"
    umoci init --layout "$g/oci" >/dev/null; umoci new --image "$g/oci:1"
    umoci insert --image "$g/oci:1" "$g/a/opt" /opt >/dev/null
    umoci insert --image "$g/oci:1" "$g/b/srv" /srv >/dev/null
    umoci insert --image "$g/oci:1" "$g/c/var" /var >/dev/null
    skopeo copy -q "oci:$g/oci:1" "docker-archive:$gig.tmp:bench/gig:1" && mv "$gig.tmp" "$gig"
    rm -rf "$g"
  fi
  gig_ref=bench/gig:1
  cat "$gig" > /dev/null
  declare -a GIP GLS BGIP BGLS
  for r in $(seq "$RUNS"); do
    CLI=$DIST_CLI
    read -r a _ _ < <(serve_in_place "$gig" "$gig_ref" ready); GIP+=("$a")
    read -r a _ < <(load_then_serve "$gig" "$gig_ref" ready); GLS+=("$a")
    CLI=$BUNDLE_CLI
    read -r a _ _ < <(serve_in_place "$gig" "$gig_ref" ready); BGIP+=("$a")
    read -r a _ < <(load_then_serve "$gig" "$gig_ref" ready); BGLS+=("$a")
    echo "# 1 GB run $r: in place ${GIP[-1]} ms, load+serve ${GLS[-1]} ms; bundle: ${BGIP[-1]} / ${BGLS[-1]} ms" >&2
  done
  echo "| ready, $(( $(stat -c %s "$gig") / 1048576 )) MB tarball | $(m "${GIP[@]}") ms | load + serve: $(m "${GLS[@]}") ms | $(ratio "$(m "${GLS[@]}")" "$(m "${GIP[@]}")")× |"
  echo "| ready, $(( $(stat -c %s "$gig") / 1048576 )) MB, bundled CLI | $(m "${BGIP[@]}") ms | load + serve, bundled: $(m "${BGLS[@]}") ms | $(ratio "$(m "${BGLS[@]}")" "$(m "${BGIP[@]}")")× |"
  rm -rf "$W/store"
fi

# ---------- the floor under "ready": a bare node:http server ----------
# (how much sooner than `load` + `serve` a server in place can ever be ready)
# It holds the manifest, config and tag list of the big tarball in memory and answers exactly one
# `skopeo inspect`: whatever cartorio does, `serve` cannot be ready sooner. Interleaved with the
# bundled `serve IMAGE.tar`, the bundled `load` alone and `node -e 0`.
if has floor; then
  CLI=$BUNDLE_CLI
  rm -rf "$W/store"; $CLI load -q --store "$W/store" "$big" >/dev/null
  repo=${big_ref%:*}; tag=${big_ref##*:}
  index=$(find "$W/store" -name index.json -path "*/$repo/index.json" | head -1)
  blob() { cat "$W/store/.blobs/blobs/sha256/${1#sha256:}"; }
  blob "$(jq -r '.manifests[0].digest' "$index")" > "$W/floor-manifest.json"
  blob "$(jq -r .config.digest "$W/floor-manifest.json")" > "$W/floor-config.json"
  cat > "$W/floor.cjs" <<NODE
const http = require('node:http');
const fs = require('node:fs');
const manifest = fs.readFileSync('$W/floor-manifest.json');
const config = fs.readFileSync('$W/floor-config.json');
const { mediaType, config: { digest } } = JSON.parse(manifest);
http.createServer((req, res) => {
  const send = (type, body) => { res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'docker-distribution-api-version': 'registry/2.0' }); res.end(req.method === 'HEAD' ? undefined : body); };
  if (req.url === '/v2/') return send('application/json', Buffer.from('{}'));
  if (req.url.endsWith('/tags/list')) return send('application/json', Buffer.from(JSON.stringify({ name: '$repo', tags: ['$tag'] })));
  if (req.url.includes('/manifests/')) return send(mediaType, manifest);
  if (req.url.endsWith('/blobs/' + digest)) return send('application/octet-stream', config);
  res.writeHead(404); res.end();
}).listen($PORT, '127.0.0.1');
NODE
  serve_store_ready() { local s p; sync; s=$(now_ms); $CLI serve --quiet --log-level warn --listen "127.0.0.1:$PORT" ${SERVE_ARGS:-} --store "$W/store" & p=$!; pids+=($p); until_inspect "$s" "127.0.0.1:$PORT/$big_ref"; stop $p; }
  declare -a FF FS FL FN FT
  for r in $(seq "$RUNS"); do
    sync; s=$(now_ms); node "$W/floor.cjs" & p=$!; pids+=($p); FF+=("$(until_inspect "$s" "127.0.0.1:$PORT/$big_ref")"); stop $p
    read -r a _ _ < <(serve_in_place "$big" "$big_ref" ready); FS+=("$a")
    FT+=("$(serve_store_ready)")
    rm -rf "$W/store"; sync; s=$(now_ms); $CLI load -q --store "$W/store" "$big" >/dev/null; FL+=($(( $(now_ms) - s )))
    s=$(now_ms); node -e 0; FN+=($(( $(now_ms) - s )))
    echo "# floor run $r: floor ${FF[-1]} ms, serve in place ${FS[-1]} ms, serve --store ${FT[-1]} ms, load ${FL[-1]} ms, node -e 0 ${FN[-1]} ms" >&2
  done
  f=$(m "${FF[@]}"); sv=$(m "${FS[@]}"); l=$(m "${FL[@]}"); st=$(m "${FT[@]}")
  echo "| ready floor: bare node:http holding one skopeo inspect's answers | bundled: $sv ms | floor: $f ms (node -e 0: $(m "${FN[@]}") ms) | $(ratio "$f" "$sv")× |"
  echo "| ready floor vs serve --store (the same image loaded) | bundled: $st ms | floor: $f ms | $(ratio "$f" "$st")× |"
  echo "| load alone, bundled | | $l ms | ratio now (load + serve) / serve ≈ $(ratio "$((l + sv))" "$sv")× |"
  echo "# saving x ms in every process start gives (load + serve − 2x) / (serve − x): 4× needs x ≥ $(( (4 * sv - l - sv) / 2 )) ms of the $((sv - f)) ms cartorio adds above the floor" >&2
  rm -rf "$W/store"
fi

# ---------- blob GET of the largest layer: tarball vs store, alternating ----------
if has blob; then
  CLI=$DIST_CLI
  rm -rf "$W/store"; $CLI load -q --store "$W/store" "$big" >/dev/null
  $CLI serve --quiet --log-level warn --listen "127.0.0.1:$PORT" "$big" & tp=$!; pids+=($tp)
  $CLI serve --quiet --log-level warn --listen "127.0.0.1:$((PORT + 2))" --store "$W/store" & sp=$!; pids+=($sp)
  until_inspect "$(now_ms)" "127.0.0.1:$PORT/$big_ref" >/dev/null; until_inspect "$(now_ms)" "127.0.0.1:$((PORT + 2))/$big_ref" >/dev/null
  repo=${big_ref%:*}; tag=${big_ref##*:}
  layer=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$PORT/v2/$repo/manifests/$tag" | jq -r '.layers | max_by(.size) | .digest')
  first=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$PORT/v2/$repo/blobs/$layer" | awk '{printf "%.0f", $1/1048576}')
  declare -a T S
  for i in $(seq 9); do
    T+=("$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$PORT/v2/$repo/blobs/$layer")")
    S+=("$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$((PORT + 2))/v2/$repo/blobs/$layer")")
  done
  echo "# blob GET MB/s, tarball: $(printf '%s\n' "${T[@]}" | awk '{printf "%.0f ", $1/1048576}'); store: $(printf '%s\n' "${S[@]}" | awk '{printf "%.0f ", $1/1048576}')" >&2
  t=$(m "${T[@]}" | awk '{printf "%.0f", $1/1048576}'); s=$(m "${S[@]}" | awk '{printf "%.0f", $1/1048576}')
  echo "| blob GET (curl, median of 9, alternating), proven | $t MB/s | from the store: $s MB/s | $(ratio "$t" "$s")× |"
  echo "| blob GET, first (hashed while it streams) | $first MB/s | from the store: $s MB/s | $(ratio "$first" "$s")× |"
  stop $tp; stop $sp; rm -rf "$W/store"
fi

# ---------- memory flat: MANY tarballs of MANY_LAYERS layers, in place vs loaded into a store ----------
if has many; then
  MANY=${MANY:-50}; MANY_LAYERS=${MANY_LAYERS:-200}
  md=$W/many-$MANY-$MANY_LAYERS
  [ -f "$md/many-$((MANY - 1)).tar" ] || { rm -rf "$md"; node "$ROOT/bench/many-archives.mjs" "$md" "$MANY" "$MANY_LAYERS"; }
  CLI=$DIST_CLI
  rm -rf "$W/store"; $CLI load -q --store "$W/store" "$md"/many-*.tar >/dev/null
  # pulls: 5 images spread over the archives, each a whole skopeo copy (200 layers)
  pulls() { local i; for i in 0 $((MANY / 4)) $((MANY / 2)) $((MANY * 3 / 4)) $((MANY - 1)); do rm -rf "$W/copy"; skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$1/bench/many-$i:1" "dir:$W/copy" >/dev/null; done; }
  rss() { tree_hwm "$1"; }
  declare -a MR MS MRA MSA
  for r in $(seq "$RUNS"); do
    s=$(now_ms); $CLI serve --quiet --log-level warn --listen "127.0.0.1:$PORT" ${SERVE_ARGS:-} "$md"/many-*.tar & p=$!; pids+=($p)
    MRA+=("$(until_inspect "$s" "127.0.0.1:$PORT/bench/many-$((MANY - 1)):1")"); pulls "$PORT"; MR+=("$(rss $p)"); stop $p
    s=$(now_ms); $CLI serve --quiet --log-level warn --listen "127.0.0.1:$PORT" ${SERVE_ARGS:-} --store "$W/store" & p=$!; pids+=($p)
    MSA+=("$(until_inspect "$s" "127.0.0.1:$PORT/bench/many-$((MANY - 1)):1")"); pulls "$PORT"; MS+=("$(rss $p)"); stop $p
    echo "# many run $r: in place ${MRA[-1]} ms ready, ${MR[-1]} MB peak; store ${MSA[-1]} ms ready, ${MS[-1]} MB peak" >&2
  done
  echo "| $MANY tarballs × $MANY_LAYERS layers ($(du -sm "$md" | cut -f1) MB): peak RSS after 5 pulls | $(m "${MR[@]}") MB | the same images loaded, serve --store: $(m "${MS[@]}") MB | $(ratio "$(m "${MS[@]}")" "$(m "${MR[@]}")")× |"
  echo "| $MANY tarballs × $MANY_LAYERS layers: ready (start to first skopeo inspect) | $(m "${MRA[@]}") ms | serve --store: $(m "${MSA[@]}") ms | $(ratio "$(m "${MSA[@]}")" "$(m "${MRA[@]}")")× |"
  rm -rf "$W/store" "$W/copy"
fi
