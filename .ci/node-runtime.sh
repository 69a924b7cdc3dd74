#!/usr/bin/env bash
# .ci/node-runtime.sh MAJOR — prints the bin/ directory of a Node.js MAJOR.x, installing it first when
# it is not in the cache. It comes from the npm registry's node-linux-<arch> package (the official
# build, checked against the registry's integrity hash by `npm pack`), unpacked into
# ${CARTORIO_NODE_CACHE:-~/.cache/cartorio/node}/<version>: the system's `node` is never touched.
# Usage: PATH="$(bash .ci/node-runtime.sh 24):$PATH" npm test
set -euo pipefail
major=${1:?usage: .ci/node-runtime.sh MAJOR (e.g. 24)}
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo ".ci/node-runtime.sh: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac
cache=${CARTORIO_NODE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/cartorio/node}
mkdir -p "$cache"
# The newest MAJOR.x already unpacked serves; otherwise the registry's newest MAJOR.x is fetched.
have=$(ls -d "$cache/$major".*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$have" ] && [ -x "$have/node" ]; then echo "$have"; exit 0; fi
work=$(mktemp -d "$cache/.partial-XXXXXX")
trap 'rm -rf "$work"' EXIT
tarball=$(cd "$work" && npm pack --silent "node-linux-$arch@$major" </dev/null | tail -n 1)
version=${tarball#node-linux-$arch-}; version=${version%.tgz}
mkdir "$work/unpacked"
tar -xzf "$work/$tarball" -C "$work/unpacked" --strip-components=1 package/bin/node package/LICENSE
"$work/unpacked/bin/node" -e 'process.exit(process.versions.node.split(".")[0] === process.argv[1] ? 0 : 1)' "$major" \
  || { echo ".ci/node-runtime.sh: node-linux-$arch@$major unpacked a node that is not $major.x" >&2; exit 1; }
rm -rf "${cache:?}/$version"
mv "$work/unpacked" "$cache/$version"
echo ".ci/node-runtime.sh: installed Node.js $version in $cache/$version" >&2
echo "$cache/$version/bin"
