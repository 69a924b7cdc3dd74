#!/usr/bin/env bash
# bench/startup.sh — start-up of the CLI from dist/: `cartorio --version`, and a small `load` (the
# 1.6 MB assets/sample-image.tar into a fresh store), on Node.js 20 (no longer supported; the
# baseline) and on Node.js 24 with and without its on-disk compile cache (NODE_COMPILE_CACHE; the
# CLI does not turn it on itself, as it measured no faster here). All three runtimes come from
# .ci/node-runtime.sh. The commands take turns within each round
# (the order rotates), so a busy moment of the machine falls on all of them; medians of wall time
# and of CPU time (user + sys, steadier on a shared machine). Ratio > 1: Node.js 24 starts faster.
# Run after `npm run build`, under the heavy-job lock. Env: RUNS (30); BENCH_DIR (/tmp/cartorio-bench).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/cartorio-bench}/startup
RUNS=${RUNS:-30}
[ -x /usr/bin/time ] || { echo "bench/startup.sh: missing /usr/bin/time: apt-get install -y time" >&2; exit 1; }
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "bench/startup.sh: run npm run build first" >&2; exit 1; }
rm -rf "$W"; mkdir -p "$W"
n20=$(bash "$ROOT/.ci/node-runtime.sh" 20)/node
n24=$(bash "$ROOT/.ci/node-runtime.sh" 24)/node
CLI=$ROOT/dist/src/cli/main.js
SAMPLE=$ROOT/assets/sample-image.tar

names=(v20 v24 v24c l20 l24 l24c f20 f24)
declare -A cmd=(
  [v20]="$n20 $CLI --version"
  [v24]="env NODE_DISABLE_COMPILE_CACHE=1 $n24 $CLI --version"
  [v24c]="env NODE_COMPILE_CACHE=$W/cache $n24 $CLI --version"
  [l20]="$n20 $CLI load -q --store $W/store $SAMPLE"
  [l24]="env NODE_DISABLE_COMPILE_CACHE=1 $n24 $CLI load -q --store $W/store $SAMPLE"
  [l24c]="env NODE_COMPILE_CACHE=$W/cache $n24 $CLI load -q --store $W/store $SAMPLE"
  [f20]="$n20 -e 0"
  [f24]="$n24 -e 0"
)
# One untimed run each: fills the compile cache (and the page cache for every binary).
for n in "${names[@]}"; do rm -rf "$W/store"; ${cmd[$n]} >/dev/null; done
for r in $(seq "$RUNS"); do
  for i in $(seq 0 $((${#names[@]} - 1))); do
    n=${names[$(( (i + r) % ${#names[@]} ))]}
    rm -rf "$W/store"
    /usr/bin/time -f '%e %U %S' -a -o "$W/$n.times" ${cmd[$n]} >/dev/null 2>"$W/$n.err" || { cat "$W/$n.err" >&2; exit 1; }
  done
done
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
wall() { awk '{printf "%.0f\n", $1 * 1000}' "$W/$1.times" | median; }
cpu() { awk '{printf "%.0f\n", ($2 + $3) * 1000}' "$W/$1.times" | median; }
row() { # LABEL NODE24 NODE20
  printf '| %-40s | %5s ms / %5s ms | %5s ms / %5s ms | %5s× / %5s× |\n' "$1" "$(wall "$2")" "$(cpu "$2")" "$(wall "$3")" "$(cpu "$3")" \
    "$(awk -v a="$(wall "$2")" -v b="$(wall "$3")" 'BEGIN{printf "%.2f", b/a}')" "$(awk -v a="$(cpu "$2")" -v b="$(cpu "$3")" 'BEGIN{printf "%.2f", b/a}')"
}
echo "## start-up: $("$n24" --version) vs $("$n20" --version), medians of $RUNS interleaved runs, wall / CPU (user+sys)"
echo "| measure                                  | Node.js 24 wall / CPU | Node.js 20 wall / CPU | ratio wall / CPU |"
echo "|------------------------------------------|-----------------------|-----------------------|------------------|"
row "cartorio --version, compile cache" v24c v20
row "cartorio --version, no compile cache" v24 v20
row "load sample-image.tar, compile cache" l24c l20
row "load sample-image.tar, no compile cache" l24 l20
row "node -e 0 (the floor)" f24 f20
