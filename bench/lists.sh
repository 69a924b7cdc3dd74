#!/usr/bin/env bash
# bench/lists.sh — big lists served by two builds of cartorio in one run: this one, and BEFORE (the
# CLI of another build, e.g. a checkout of an older commit after `npm run build`). One repository of
# 65 536 tags of 127 characters (tags/list without n: 8.5 MB of JSON) and one of 20 000 referrers
# of one image.
#
#   tags/list GET without n, and the first referrers page: wrk -c4 -t2, req/s and p99
#   tags/list HEAD without n (wrk waits for a HEAD's body): median ms of 200 by one fetch client
#   every referrer, following Link (one request when BEFORE does not page): median ms of 10
#
# Ratio > 1 means this build is better. Env: BEFORE (required: "node /path/to/old/dist/src/cli/main.js"),
# TAGS (65536), REFERRERS (20000), RUNS (3, medians), DURATION (5s), BENCH_DIR (/tmp/cartorio-bench).
# Only 127.0.0.1 is contacted; both servers are stopped by PID on exit.
# Run it as `flock /tmp/cartorio-heavy.lock bash bench/lists.sh`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/cartorio-bench}/lists
TAGS=${TAGS:-65536}; REFERRERS=${REFERRERS:-20000}; RUNS=${RUNS:-3}; DURATION=${DURATION:-5s}
NEW_PORT=${NEW_PORT:-5421}; OLD_PORT=${OLD_PORT:-5422}
CLI="node $ROOT/dist/src/cli/main.js"
[ -n "${BEFORE:-}" ] || { echo "bench: set BEFORE to the CLI of the build to compare with" >&2; exit 1; }
for t in wrk curl jq; do command -v $t >/dev/null || { echo "bench: missing $t: apt-get install -y wrk curl jq" >&2; exit 1; }; done
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "bench: run npm run build first" >&2; exit 1; }
store=$W/store; repo=bench/lists; refs=bench/referrers

pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if [ "$(cat "$W/.done" 2>/dev/null)" != "$TAGS $REFERRERS" ]; then
  rm -rf "$W"; mkdir -p "$W"
  $CLI load -q --store "$store" "$ROOT/assets/sample-image.tar" --name "$repo" --tag base
  $CLI load -q --store "$store" "$ROOT/assets/sample-image.tar" --name "$refs" --tag base
  # TAGS tags on the one image; in another repository (an older build refused index.json files of
  # more than 65 536 entries), REFERRERS artifact manifests naming it as subject
  node --input-type=module - "$store/$repo" "$TAGS" "$store/$refs" "$REFERRERS" <<'EOF'
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const [dir, tags, refsDir, referrers] = [process.argv[2], Number(process.argv[3]), process.argv[4], Number(process.argv[5])];
const write = (at, manifests) => writeFileSync(join(at, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }, null, 2) + '\n');
const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
const { annotations, ...image } = index.manifests[0];
write(dir, Array.from({ length: tags }, (_, i) => ({ ...image, annotations: { 'org.opencontainers.image.ref.name': `${'t'.repeat(121)}-${String(i).padStart(5, '0')}` } })));
const manifests = [index.manifests[0]];
const empty = { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${createHash('sha256').update('{}').digest('hex')}`, size: 2 };
for (let i = 0; i < referrers; i++) {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example.sbom.v1', config: empty, layers: [], subject: image, annotations: { 'org.example.n': String(i) } }));
  const hex = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(refsDir, 'blobs', 'sha256', hex), bytes);
  manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${hex}`, size: bytes.length });
}
write(refsDir, manifests);
EOF
  echo "$TAGS $REFERRERS" > "$W/.done"
fi
subject=$(jq -r '.manifests[0].digest' "$store/$refs/index.json")

start() { # PORT CLI...
  local port=$1; shift
  rm -f "$W/ready-$port"
  $@ serve --store "$store" --listen "127.0.0.1:$port" --ready-file "$W/ready-$port" --log-level error --quiet 2>"$W/serve-$port.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$W/ready-$port" ] && return; sleep 0.1; done
  echo "bench: serve on $port did not start: $(tail -3 "$W/serve-$port.log")" >&2; exit 1
}
start "$NEW_PORT" $CLI
start "$OLD_PORT" $BEFORE
N=http://127.0.0.1:$NEW_PORT; O=http://127.0.0.1:$OLD_PORT
tags_path=/v2/$repo/tags/list; refs_path=/v2/$refs/referrers/$subject
# same answers, and the first requests (index.json parsed, manifests walked) out of the way
for base in "$N" "$O"; do
  [ "$(curl -fsS "$base$tags_path" | jq '.tags | length')" = "$TAGS" ] || { echo "bench: $base lists the wrong tags" >&2; exit 1; }
  curl -fsS -o /dev/null "$base$refs_path"
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'; }
wrk_one() { # URL → "rps p99ms"
  local out; out=$(wrk -c 4 -t 2 -d "$DURATION" --latency "$1")
  grep -E 'Non-2xx|Socket errors' <<<"$out" >&2 || true
  awk '/^Requests\/sec/ {r=$2} /^ +99%/ {v=$2; if (v ~ /us$/) p=v/1000; else if (v ~ /ms$/) p=v+0; else p=(v+0)*1000} END {printf "%.0f %.2f\n", r, p}' <<<"$out"
}
# A client in one process (fetch), so no process start-up is counted: MODE URL COUNT → median ms
# (head: COUNT HEAD requests; pages: COUNT walks of every page, following Link).
client() {
  node --input-type=module - "$@" <<'EOF'
const [mode, url, count] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const times = [];
for (let i = 0; i < count; i++) {
  const started = performance.now();
  if (mode === 'head') {
    const response = await fetch(url, { method: 'HEAD' });
    if (response.status !== 200 || Number(response.headers.get('content-length')) < 1) throw new Error(`HEAD ${url}: ${response.status}`);
  } else {
    let next = url, entries = 0, pages = 0;
    while (next) {
      const response = await fetch(next);
      entries += (await response.json()).manifests.length;
      pages++;
      const link = /^<([^>]+)>; rel="next"$/.exec(response.headers.get('link') ?? '')?.[1];
      next = link && new URL(link, url).href;
    }
    if (i === 0) console.error(`${pages} pages, ${entries} referrers`);
  }
  times.push(performance.now() - started);
}
times.sort((a, b) => a - b);
console.log(times[times.length >> 1].toFixed(2));
EOF
}
declare -A R P
for r in $(seq "$RUNS"); do
  for who in $([ $((r % 2)) = 1 ] && echo "n o" || echo "o n"); do
    base=$([ $who = n ] && echo "$N" || echo "$O")
    read -r x y < <(wrk_one "$base$tags_path"); R[get-$who]+="$x "; P[get-$who]+="$y "
    R[head-$who]+="$(client head "$base$tags_path" 200) "
    read -r x y < <(wrk_one "$base$refs_path"); R[ref-$who]+="$x "; P[ref-$who]+="$y "
    R[all-$who]+="$(client pages "$base$refs_path" 10 2>"$W/pages-$who") "
  done
done
mr() { printf '%s\n' ${R[$1]} | median; }; mp() { printf '%s\n' ${P[$1]} | median; }
row() { # LABEL NEW OLD UNIT HIGHER_IS_BETTER(1|0)
  local ratio; if [ "$5" = 1 ]; then ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.2f", a/b}'); else ratio=$(awk -v a="$2" -v b="$3" 'BEGIN{printf "%.2f", b/a}'); fi
  printf '| %-50s | %10s %-5s | %10s %-5s | %7s× |\n' "$1" "$2" "$4" "$3" "$4" "$ratio"
}
echo "# cartorio lists bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, node $(node --version), $RUNS runs (medians), wrk -c4 $DURATION"
echo "# one repository of $TAGS tags ($(curl -fsS "$N$tags_path" | wc -c) bytes of tags/list), one of $REFERRERS referrers of one image; BEFORE = $BEFORE"
printf '| %-50s | %-16s | %-16s | %-8s |\n|%s|%s|%s|%s|\n' measure "this build" BEFORE ratio "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..18})" "$(printf -- '-%.0s' {1..18})" "----------"
row "tags/list GET, no n: req/s" "$(mr get-n)" "$(mr get-o)" req/s 1
row "tags/list GET, no n: p99" "$(mp get-n)" "$(mp get-o)" ms 0
row "tags/list HEAD, no n: median of 200, one client" "$(mr head-n)" "$(mr head-o)" ms 0
row "referrers GET (first page): req/s" "$(mr ref-n)" "$(mr ref-o)" req/s 1
row "referrers GET (first page): p99" "$(mp ref-n)" "$(mp ref-o)" ms 0
row "every referrer, following Link: median of 10" "$(mr all-n)" "$(mr all-o)" ms 0
echo "every referrer: this build $(cat "$W/pages-n"), BEFORE $(cat "$W/pages-o")"
