#!/usr/bin/env bash
# bench/ready-floor.sh — the floor under `serve IMAGE.tar`'s ready time (issue 13's 4× target):
# the time from starting a process to the first successful `skopeo inspect` for a bare node:http
# server that only answers that inspect from bytes it holds (no fastify, no archive reading), next
# to the bundled `cartorio serve IMAGE.tar`, the bundled `cartorio load` of the same tarball, and
# `node -e 0`, interleaved. Whatever cartorio does, `serve` cannot be ready sooner than the floor.
# Run under the heavy lock: flock /tmp/cartorio-heavy.lock bash bench/ready-floor.sh
# Env: TARBALL (bench/run.sh's 472 MB image), RUNS (7), PORT (5419), BENCH_DIR (/tmp/cartorio-bench-floor).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/cartorio-bench-floor}; RUNS=${RUNS:-7}; PORT=${PORT:-5419}
T=${TARBALL:-/tmp/cartorio-bench/image/big-docker.tar}
B=$ROOT/dist/bundle/cartorio/dist/src/cli/main.mjs
[ -f "$B" ] || { echo "bench: run npm run build first (it writes dist/bundle)" >&2; exit 1; }
[ -f "$T" ] || { echo "bench: $T missing: run bench/run.sh once, or set TARBALL" >&2; exit 1; }
rm -rf "$W"; mkdir -p "$W"
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT
now_ms() { date +%s%3N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'; }
until_inspect() { # same polling as bench/serve-archive.sh
  local i; for i in $(seq 2000); do
    skopeo inspect --tls-verify=false "docker://$2" >/dev/null 2>&1 && { echo $(( $(now_ms) - $1 )); return; }
    sleep 0.01
  done; echo "bench: $2 never became ready" >&2; exit 1
}
ref=$(jq -r '.[0].RepoTags[0]' <(tar -xOf "$T" manifest.json)); repo=${ref%:*}; tag=${ref##*:}
# The manifest and config a served tarball answers with, taken from a load of it.
node "$B" load -q --store "$W/store" "$T" >/dev/null
dir=$(dirname "$(find "$W/store" -name index.json -path "*/${repo#docker.io/}/index.json" | head -1)")
mdig=$(jq -r '.manifests[0].digest' "$dir/index.json")
blob() { cat "$W/store/.blobs/blobs/sha256/${1#sha256:}" 2>/dev/null || cat "$dir/blobs/sha256/${1#sha256:}"; }
blob "$mdig" > "$W/manifest.json"; blob "$(jq -r .config.digest "$W/manifest.json")" > "$W/config.json"
rm -rf "$W/store"
cat > "$W/floor.cjs" <<NODE
const http = require('node:http');
const fs = require('node:fs');
const manifest = fs.readFileSync('$W/manifest.json');
const config = fs.readFileSync('$W/config.json');
const { mediaType, config: { digest } } = JSON.parse(manifest);
http.createServer((req, res) => {
  const send = (type, body) => { res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'docker-distribution-api-version': 'registry/2.0' }); res.end(req.method === 'HEAD' ? undefined : body); };
  if (req.url === '/v2/') return send('application/json', Buffer.from('{}'));
  if (req.url.endsWith('/tags/list')) return send('application/json', Buffer.from(JSON.stringify({ name: '${repo#docker.io/}', tags: ['$tag'] })));
  if (req.url.includes('/manifests/')) return send(mediaType, manifest);
  if (req.url.endsWith('/blobs/' + digest)) return send('application/octet-stream', config);
  res.writeHead(404); res.end();
}).listen($PORT, '127.0.0.1');
NODE
declare -a F S L N
for r in $(seq "$RUNS"); do
  sync; s=$(now_ms); node "$W/floor.cjs" & pid=$!; F+=($(until_inspect "$s" "127.0.0.1:$PORT/$ref")); kill $pid; wait $pid 2>/dev/null || true
  sync; s=$(now_ms); node "$B" serve --quiet --log-level warn --listen "127.0.0.1:$PORT" "$T" & pid=$!; S+=($(until_inspect "$s" "127.0.0.1:$PORT/$ref")); kill $pid; wait $pid 2>/dev/null || true
  pid=
  rm -rf "$W/store"; sync; s=$(now_ms); node "$B" load -q --store "$W/store" "$T" >/dev/null; L+=($(( $(now_ms) - s )))
  s=$(now_ms); node -e 0; N+=($(( $(now_ms) - s )))
  echo "# run $r: floor ${F[-1]} ms, serve in place ${S[-1]} ms, load ${L[-1]} ms, node -e 0 ${N[-1]} ms"
done
rm -rf "$W/store"
m() { printf '%s\n' "$@" | median; }
f=$(m "${F[@]}"); s=$(m "${S[@]}"); l=$(m "${L[@]}"); n=$(m "${N[@]}")
echo "| ready floor (bare node:http) | serve IMAGE.tar, bundled | load, bundled | node -e 0 |"
echo "|---|---|---|---|"
echo "| $f ms | $s ms | $l ms | $n ms |"
echo "# cartorio's own start-up above the floor: $((s - f)) ms; ratio now (load + serve) / serve ≈ $(awk -v l=$l -v s=$s 'BEGIN{printf "%.2f", (l+s)/s}')×;"
echo "# saving x ms in every process start gives (load + serve − 2x) / (serve − x): 4× needs x ≥ $(awk -v l=$l -v s=$s 'BEGIN{printf "%.0f", (4*s-(l+s))/2}') ms"
