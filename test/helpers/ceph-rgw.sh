#!/usr/bin/env bash
# test/helpers/ceph-rgw.sh — a throw-away S3 object store for the tests: one Ceph monitor, one OSD
# keeping its data in memory (memstore) and the RADOS Gateway, all on 127.0.0.1, all state in DIR.
#
#   ceph-rgw.sh start DIR   prints KEY=VALUE lines (endpoint, keys, pids) once radosgw answers
#   ceph-rgw.sh stop DIR    stops the daemons it started (by the PIDs in DIR/pids), removes DIR
#
# Env: RGW_PORT, MON_PORT (default: free ports), MEMSTORE_BYTES (default 2 GiB; a full memstore
# makes writes wait forever, as a full RADOS cluster does), READY_TIMEOUT (s, default 90).
# Debian packages: ceph-mon ceph-osd radosgw ceph-common.
set -euo pipefail

ACCESS_KEY=CARTORIOTESTACCESS01
SECRET_KEY=cartorio-test-secret-key-0000000000000000

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# True while PID runs and is not a zombie (daemons are orphaned to PID 1, which may reap them late).
running() { local state; state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1; [ -n "$state" ] && [ "$state" != Z ]; }

stop() {
  local dir=$1 name pid deadline
  [ -f "$dir/pids" ] || { echo "ceph-rgw.sh: $dir/pids missing: nothing started there" >&2; return 1; }
  # Newest first; the state is thrown away, so no clean shutdown is owed: KILL, then wait.
  while read -r name pid; do
    # Only our daemon: its command line names this directory's ceph.conf (PIDs are reused).
    if running "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/ceph.conf"; then
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while running "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    fi
  done < <(tac "$dir/pids")
  rm -rf "$dir"
}

start() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  [ -z "$(ls -A "$dir")" ] || { echo "ceph-rgw.sh: $dir is not empty" >&2; return 1; }
  mkdir -p "$dir"/{mon,osd,run,log,tmp}
  local mon_port=${MON_PORT:-$(free_port)} rgw_port=${RGW_PORT:-$(free_port)}
  local conf=$dir/ceph.conf fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  export CEPH_CONF=$conf
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
# No cephx on a loopback test cluster. radosgw alone defaults its monitor connection to "secure",
# which needs cephx: without crc it retries its first auth request for ever.
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
keyring = /dev/null
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
crash dir = $dir/tmp
exec dir = $dir/tmp
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
mon osd full ratio = .99
mon osd backfillfull ratio = .985
mon osd nearfull ratio = .98
osd failsafe full ratio = .995
[mon]
mon data = $dir/mon
mon cluster log file = $dir/log/cluster.log
# Each pool radosgw creates at start waits for a monitor commit, by default ~1 s apart.
paxos propose interval = 0.01
paxos min wait = 0.001
[osd]
osd data = $dir/osd
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES:-2147483648}
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw thread pool size = 32
rgw dynamic resharding = false
# A request sent before the OSD booted is resent on the next tick (default 5 s).
objecter tick interval = 1
# Deleted objects' memory is freed within ~30 s instead of 2 h.
rgw gc obj min wait = 10
rgw gc processor period = 10
CONF
  : >"$dir/pids"
  local started=0
  trap '[ $started = 1 ] || { stop "$dir" 2>/dev/null; echo "ceph-rgw.sh: start failed" >&2; }' RETURN
  daemon() { local name=$1; shift; setsid "$@" </dev/null >"$dir/log/$name.out" 2>&1 & echo "$name $!" >>"$dir/pids"; }

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$dir/monmap"
  daemon mon ceph-mon -c "$conf" -i a -f
  local osd_id
  osd_id=$(ceph -c "$conf" --connect-timeout 15 osd new "$osd_uuid")
  ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1
  daemon osd ceph-osd -c "$conf" -i "$osd_id" -f
  # radosgw creates its pools first thing; started before the OSD is active, it stalls.
  local deadline=$((SECONDS + ${READY_TIMEOUT:-90}))
  until ceph --admin-daemon "$dir/run/osd.$osd_id.asok" status 2>/dev/null | grep -q '"state": "active"'; do
    [ $SECONDS -lt $deadline ] || { echo "ceph-rgw.sh: the OSD did not become active; logs in $dir/log" >&2; return 1; }
    sleep 0.1
  done
  daemon rgw radosgw -c "$conf" -n client.rgw -f
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$rgw_port/")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || { echo "ceph-rgw.sh: radosgw did not answer on 127.0.0.1:$rgw_port; logs in $dir/log" >&2; return 1; }
    sleep 0.1
  done
  radosgw-admin -c "$conf" user create --uid=cartorio --display-name=cartorio --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$dir/log/user.out"
  started=1
  echo "CEPH_DIR=$dir"
  echo "S3_ENDPOINT=http://127.0.0.1:$rgw_port"
  echo "S3_ACCESS_KEY=$ACCESS_KEY"
  echo "S3_SECRET_KEY=$SECRET_KEY"
  echo "CEPH_PIDS=\"$(awk '{printf "%s%s", sep, $2; sep=" "}' "$dir/pids")\""
}

case "${1:-}" in
  start) start "${2:?usage: ceph-rgw.sh start DIR}" ;;
  stop) stop "${2:?usage: ceph-rgw.sh stop DIR}" ;;
  *) echo "usage: ceph-rgw.sh start DIR | stop DIR" >&2; exit 2 ;;
esac
