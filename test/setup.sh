#!/usr/bin/env bash
# test/setup.sh — what `npm test` needs before the suites run: the Debian test peers (installed when
# missing; this needs root, as on CI) and the fixtures in .test-fixtures/ (rebuilt when this script or
# the fixture recipe changes).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES="skopeo umoci podman buildah docker-registry containerd runc docker.io busybox-static jq curl openssl zstd tinyproxy strace radosgw ceph-mon ceph-osd ceph-common awscli chromium"
missing=()
for bin in skopeo umoci podman buildah docker-registry containerd ctr runc dockerd jq curl openssl zstd tinyproxy strace radosgw ceph-mon ceph-osd ceph monmaptool radosgw-admin aws chromium; do
  command -v "$bin" >/dev/null || missing+=("$bin")
done
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test/setup.sh: installing Debian test peers (missing: ${missing[*]})" >&2
  if [ "$(id -u)" != 0 ]; then echo "test/setup.sh: run as root, or install: apt-get install -y $PACKAGES" >&2; exit 1; fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PACKAGES >/dev/null
fi
stamp=$(cat test/setup.sh test/fixtures/make-fixtures.sh | sha256sum | cut -c1-16)
if [ "$(cat .test-fixtures/.stamp 2>/dev/null)" != "$stamp" ]; then
  echo "test/setup.sh: building fixtures in .test-fixtures/" >&2
  bash test/fixtures/make-fixtures.sh .test-fixtures >/dev/null
  echo "$stamp" > .test-fixtures/.stamp
fi
