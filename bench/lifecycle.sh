#!/usr/bin/env bash
# bench/lifecycle.sh — removing images at scale, against Distribution 2.8 (Debian's docker-registry)
# on the same content in the same run where it has the same operation.
#
#   a. load of one `docker save` naming N repositories (default 10 000); with BASE_CLI set (e.g. the
#      CLI of an earlier build), that one is timed on the same archive too
#   b. a store of N repositories of their own image each (config and manifest of its own, layers
#      shared: 2N blobs besides the layers); half the repositories removed, then
#      `cartorio gc --grace 0s` against `docker-registry garbage-collect --delete-untagged` over the
#      same blobs and tags, half the tags removed the same way (its tag directories): time and peak RSS
#   c. `cartorio rm` of one tag in that N-repository store: time, and how many directories it
#      listed (strace: getdents64 calls), which must not grow with N
#
# Env: N (10000), RUNS (3, medians for a), SECTIONS (abc: the letters to run; c needs b), BENCH_DIR (/tmp/cartorio-bench), CARTORIO (the CLI),
# BASE_CLI (optional second CLI for a, BASE_RUNS times: 1). Only local files; no server is started.
# Run it as `flock /tmp/cartorio-heavy.lock bash bench/lifecycle.sh`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/cartorio-bench}/lifecycle
N=${N:-10000}; RUNS=${RUNS:-3}
CLI=${CARTORIO:-node $ROOT/dist/src/cli/main.js}
SAVE=$ROOT/.test-fixtures/docker-save-busybox.tar
for t in docker-registry strace jq /usr/bin/time; do command -v $t >/dev/null || { echo "bench: missing $t: apt-get install -y docker-registry strace jq time" >&2; exit 1; }; done
[ -f "$SAVE" ] || { echo "bench: run bash test/setup.sh first (it builds $SAVE)" >&2; exit 1; }
say() { echo "# $(date -u +%H:%M:%S) $*" >&2; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'; }
now_ms() { date +%s%3N; }
timed() { # OUT_PREFIX CMD… → OUT_PREFIX.ms, OUT_PREFIX.rss (MB, peak)
  local p=$1; shift; local s; s=$(now_ms)
  /usr/bin/time -f %M -o "$p.kb" "$@" >"$p.out" 2>"$p.err" || { echo "bench: $* failed: $(tail -3 "$p.err")" >&2; exit 1; }
  echo $(( $(now_ms) - s )) > "$p.ms"; awk '{printf "%.0f\n", $1/1024}' "$p.kb" > "$p.rss"
}
SECTIONS_=${SECTIONS:-abc}
has() { [[ $SECTIONS_ == *"$1"* ]]; }
rm -rf "$W"; mkdir -p "$W"

# ---------- a. one docker save naming N repositories ----------
if has a; then
mkdir "$W/names"; tar -xf "$SAVE" -C "$W/names"; rm -f "$W/names/repositories"
node "$ROOT/bench/lifecycle-fixtures.mjs" names "$W/names" "$N"
(cd "$W/names" && tar -cf "$W/names.tar" ./*)
for cli in "$CLI" ${BASE_CLI:+"$BASE_CLI"}; do
  times=(); runs=$RUNS; [ "$cli" = "$CLI" ] || runs=${BASE_RUNS:-1}
  for r in $(seq "$runs"); do
    rm -rf "$W/load-store"; sync
    timed "$W/load" $cli load -q --store "$W/load-store" "$W/names.tar"
    times+=("$(cat "$W/load.ms")")
  done
  echo "a. load of a docker save naming $N repositories ($cli): median $(printf '%s\n' "${times[@]}" | median) ms of ${times[*]}; peak RSS $(cat "$W/load.rss") MB"
done
[ "$($CLI verify --store "$W/load-store" | tail -1 | awk '{print $1}')" = "$N" ] || { echo "bench: the load is not complete" >&2; exit 1; }
rm -rf "$W/load-store" "$W/names"
fi
has b || exit 0

# ---------- b. gc over N repositories and 2N blobs of their own ----------
say "building the gc store ($N images)"
mkdir "$W/images"; tar -xf "$SAVE" -C "$W/images"; rm -f "$W/images/repositories"
node "$ROOT/bench/lifecycle-fixtures.mjs" images "$W/images" "$N"
(cd "$W/images" && tar -cf "$W/images.tar" ./*); rm -rf "$W/images"
store=$W/store; dist=$W/dist
$CLI load -q --store "$store" "$W/images.tar"
node "$ROOT/bench/lifecycle-fixtures.mjs" dist "$store" "$dist"
pool=$(ls "$store/.blobs/blobs/sha256" | wc -l)
# half the repositories go: cartorio rm (by name); Distribution loses their tags, as an untag leaves it
seq 0 2 $((N - 1)) | sed 's|^|many/r|' > "$W/gone"
xargs -a "$W/gone" -n 2000 $CLI rm -q --store "$store"
while read -r name; do rm -rf "$dist/docker/registry/v2/repositories/$name/_manifests/tags/"*; done < "$W/gone"
cat > "$W/dist.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $dist
  delete:
    enabled: true
YML
sync
timed "$W/gc" $CLI gc --store "$store" --grace 0s --json
timed "$W/dgc" docker-registry garbage-collect --delete-untagged "$W/dist.yml"
freed=$(jq .bytesFreed "$W/gc.out"); nfreed=$(jq '.freed | length' "$W/gc.out")
dleft=$(find "$dist/docker/registry/v2/blobs" -name data | wc -l); left=$(ls "$store/.blobs/blobs/sha256" | wc -l)
echo "b. gc of $((N / 2)) removed repositories in a store of $N ($pool blobs): cartorio $(cat "$W/gc.ms") ms, peak RSS $(cat "$W/gc.rss") MB, freed $nfreed blobs ($freed bytes), $left left;" \
  "docker-registry garbage-collect --delete-untagged $(cat "$W/dgc.ms") ms, peak RSS $(cat "$W/dgc.rss") MB, $dleft blobs left;" \
  "time ratio $(awk -v a="$(cat "$W/gc.ms")" -v b="$(cat "$W/dgc.ms")" 'BEGIN{printf "%.2f", b/a}')× (>1: cartorio faster)"
$CLI verify --store "$store" >/dev/null || { echo "bench: verify failed after gc" >&2; exit 1; }

# ---------- c. rm of one tag in an N-repository store ----------
one="many/r$((N - 1)):1"
timed "$W/rm" strace -f -c -e trace=getdents64 -o "$W/rm.strace" $CLI rm -q --store "$store" "$one"
dents=$(awk '/getdents64/ {print $4}' "$W/rm.strace"); dents=${dents:-0}
echo "c. rm of one tag ($one) in a store of $((N / 2)) repositories: $(cat "$W/rm.ms") ms under strace, $dents getdents64 calls (directories listed)"
