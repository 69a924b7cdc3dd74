#!/usr/bin/env bash
# bench/ui.sh — the catalog pages at scale: 10 000 repositories (a real image copied by skopeo into a
# store, hard-linked under 10 000 names of 5 registry hosts, .repositories as a load writes it).
#
#   a. server time per page (curl's time_total on 127.0.0.1, medians): home cold (first request after
#      start: the page module loads, 100 repositories are read), home warm, a page deep in the list, a
#      search, a repository page; beside /v2/_catalog?n=100, the API's page of the same names (ratio)
#   b. bytes: the home page's HTML (budget ≤ 200 KB) and its assets, stylesheet + script + icon
#      (budget ≤ 100 KB beyond the HTML)
#   c. first paint and first contentful paint of the home page in Debian's Chromium (headless,
#      playwright-core, a fresh browser per run; bench/ui-paint.mjs)
#   d. serve start-up to ready with the catalog and with --no-ui (the page module is loaded lazily,
#      so the two should match)
#
# Env: RUNS (5, medians), UI_REPOS (10000), BENCH_DIR (/tmp/cartorio-bench). Only 127.0.0.1 is
# contacted; the server started here is stopped by PID on exit. Run under the shared lock:
#   flock /tmp/cartorio-heavy.lock bash bench/ui.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/cartorio-bench}/ui
RUNS=${RUNS:-5}; NREPOS=${UI_REPOS:-10000}; PORT=${UI_PORT:-5421}
CLI="node $ROOT/dist/src/cli/main.js"
for t in skopeo curl /usr/bin/chromium; do command -v $t >/dev/null || { echo "bench: missing $t: apt-get install -y skopeo curl chromium" >&2; exit 1; }; done
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "bench: run npm run build first" >&2; exit 1; }
store=$W/store
say() { echo "# $(date -u +%H:%M:%S) $*" >&2; }

pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; return 0; }
trap cleanup EXIT

if [ "$(cat "$W/.done" 2>/dev/null)" != "$NREPOS" ]; then
  say "building $NREPOS repositories in $store (once)"
  rm -rf "$W"; mkdir -p "$store/bench"
  skopeo copy -q "oci:$ROOT/.test-fixtures/busybox-oci:1" "oci:$store/bench/tiny:1"
  for i in $(seq 0 $((NREPOS - 1))); do
    case $((i % 5)) in
      0) echo "docker.io/org-$((i % 400))/app-$i";; 1) echo "quay.io/team-$((i % 300))/svc-$i";;
      2) echo "registry.k8s.io/sig-$((i % 50))/component-$i";; 3) echo "ghcr.io/owner-$((i % 200))/tool-$i";;
      4) echo "internal/team-$((i % 100))/web-$i";;
    esac
  done > "$W/names"
  node --input-type=module -e '
    import { linkSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
    import { join } from "node:path";
    const [store, names] = process.argv.slice(1);
    const link = (from, to) => { mkdirSync(to, { recursive: true }); for (const e of readdirSync(from, { withFileTypes: true })) e.isDirectory() ? link(join(from, e.name), join(to, e.name)) : linkSync(join(from, e.name), join(to, e.name)); };
    for (const name of readFileSync(names, "utf8").split("\n").filter(Boolean)) link(join(store, "bench/tiny"), join(store, name));
  ' "$store" "$W/names"
  { cat "$W/names"; echo bench/tiny; } | LC_ALL=C sort > "$store/.repositories"
  echo "$NREPOS" > "$W/.done"
fi

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'; }
start() { # ARGS… → a fresh server on $PORT; sets started (ms from spawn to ready)
  [ -n "$pid" ] && { kill "$pid"; wait "$pid" 2>/dev/null || true; }
  rm -f "$W/ready"; local s; s=$(date +%s%3N)
  $CLI serve --store "$store" --listen "127.0.0.1:$PORT" --ready-file "$W/ready" --log-level error --quiet "$@" 2>"$W/serve.log" &
  pid=$!
  for _ in $(seq 400); do [ -s "$W/ready" ] && break; sleep 0.005; done
  [ -s "$W/ready" ] || { echo "bench: serve did not start: $(tail -3 "$W/serve.log")" >&2; exit 1; }
  started=$(( $(date +%s%3N) - s ))
}
ms() { curl -fsS -o /dev/null -w '%{time_total}\n' "$1" | awk '{printf "%.1f\n", $1 * 1000}'; }
warm() { local i; for i in $(seq "$RUNS"); do ms "$1"; done | median; }
C=http://127.0.0.1:$PORT

# d. start-up, alternating
up=(); noui=()
for _ in $(seq "$RUNS"); do start; up+=("$started"); start --no-ui; noui+=("$started"); done
# a. server time per page
cold=(); for _ in $(seq "$RUNS"); do start; cold+=("$(ms "$C/")"); done
deep=$(( NREPOS / 100 / 2 ))
home=$(warm "$C/"); deeppage=$(warm "$C/?page=$deep"); search=$(warm "$C/?q=team-7"); host=$(warm "$C/?host=quay.io&page=3")
repo=$(warm "$C/r/quay.io/team-1/svc-1"); catalog=$(warm "$C/v2/_catalog?n=100")
start; first_deep=$(ms "$C/?page=$((deep + 1))")
# b. bytes
html=$(curl -fsS "$C/" -o "$W/home.html" -w '%{size_download}')
assets=0; for a in $(grep -oE '/-/[a-z]+\.[0-9a-f]+\.(css|js|svg)' "$W/home.html" | sort -u); do assets=$(( assets + $(curl -fsS "$C$a" -o /dev/null -w '%{size_download}') )); done
repobytes=$(curl -fsS "$C/r/quay.io/team-1/svc-1" -o /dev/null -w '%{size_download}')
# c. first paint
paint=$(node "$ROOT/bench/ui-paint.mjs" "$C/" "$RUNS")
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

m() { printf '%s\n' "$@" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo "catalog pages over $NREPOS repositories (medians of $RUNS; $(date -u +%Y-%m-%dT%H:%MZ))"
printf '| %-58s | %12s |\n|%s|%s|\n' measure value "$(printf -- '-%.0s' {1..60})" "--------------"
printf '| %-58s | %9s ms |\n' "home, first request after start (module load, 100 rows)" "$(m "${cold[@]}")"
printf '| %-58s | %9s ms |\n' "home, a page never asked before (page $((deep + 1)), 100 rows)" "$first_deep"
printf '| %-58s | %9s ms |\n' "home, warm" "$home"
printf '| %-58s | %9s ms |\n' "home, page $deep, warm" "$deeppage"
printf '| %-58s | %9s ms |\n' "home, search ?q=team-7 (substring over every name), warm" "$search"
printf '| %-58s | %9s ms |\n' "home, ?host=quay.io&page=3, warm" "$host"
printf '| %-58s | %9s ms |\n' "repository page, warm" "$repo"
printf '| %-58s | %9s ms |\n' "peer: /v2/_catalog?n=100 (JSON, same names)" "$catalog"
printf '| %-58s | %11s× |\n' "home warm ÷ /v2/_catalog?n=100" "$(ratio "$home" "$catalog")"
printf '| %-58s | %9s kB |\n' "home HTML (budget 200 kB)" "$(awk -v b="$html" 'BEGIN{printf "%.1f", b/1000}')"
printf '| %-58s | %9s kB |\n' "assets: stylesheet + script + icon (budget 100 kB)" "$(awk -v b="$assets" 'BEGIN{printf "%.1f", b/1000}')"
printf '| %-58s | %9s kB |\n' "repository page HTML" "$(awk -v b="$repobytes" 'BEGIN{printf "%.1f", b/1000}')"
printf "| %-58s | %s |\n" "Chromium first paint / first contentful paint, home" "$paint"
printf '| %-58s | %9s ms |\n' "serve start-up to ready, catalog on" "$(m "${up[@]}")"
printf '| %-58s | %9s ms |\n' "serve start-up to ready, --no-ui" "$(m "${noui[@]}")"
[ "$html" -le 200000 ] || { echo "bench: home HTML $html bytes is over the 200 kB budget" >&2; exit 1; }
[ "$assets" -le 100000 ] || { echo "bench: assets $assets bytes are over the 100 kB budget" >&2; exit 1; }
