#!/usr/bin/env bash
# Makes sure a containerd answers on $CONTAINERD_ADDRESS (default /run/containerd/containerd.sock):
# systemd's unit where there is systemd, else a daemonised containerd logging to /var/log/containerd.log.
set -euo pipefail
address=${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}
if ctr --address "$address" version >/dev/null 2>&1; then
  exit 0
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl start containerd
else
  echo "start-containerd: starting containerd (log: /var/log/containerd.log)"
  setsid containerd >>/var/log/containerd.log 2>&1 < /dev/null &
fi
for _ in $(seq 1 100); do
  ctr --address "$address" version >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "start-containerd: containerd did not answer on $address; see /var/log/containerd.log" >&2
exit 1
