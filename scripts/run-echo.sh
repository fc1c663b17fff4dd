#!/usr/bin/env bash
# The seed scenario from a fresh Debian host: install what is needed, build and install podctl and
# its member-runtime plugins, make sure containerd runs, create the echo pod (pause sandbox +
# podctl's echo server, hostPort 9080) and curl it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run-echo: run as root (podctl manages namespaces, CNI and containerd)" >&2; exit 1; }
scripts/setup.sh
cargo build --release --quiet     # podctl and its plugins (the workspace's default members)
install -m 0755 target/release/podctl target/release/podctl-log-driver target/release/podctl-agent-monitor target/release/podctl-agent /usr/local/bin/
install -d /usr/libexec/podctl/runtimes
install -m 0755 target/release/podctl-runtime-wasmtime target/release/podctl-runtime-exec /usr/libexec/podctl/runtimes/
# Shell completion (new shells pick it up; `source <(podctl completion bash)` for this one) and man pages.
install -d /usr/share/bash-completion/completions /usr/local/share/man/man1
/usr/local/bin/podctl completion bash > /usr/share/bash-completion/completions/podctl
/usr/local/bin/podctl man --dir /usr/local/share/man/man1 > /dev/null
scripts/start-containerd.sh
if podctl get pod echo >/dev/null 2>&1; then
  echo "run-echo: pod echo exists already; recreating it"
  podctl delete echo
fi
podctl create -f examples/echo-pod.yaml
for _ in $(seq 1 100); do
  curl -sf -o /dev/null 127.0.0.1:9080 && break
  sleep 0.05
done
echo "+ curl 127.0.0.1:9080 -d hello"
curl -s 127.0.0.1:9080 -d hello
echo "+ podctl get pods -o wide"
podctl get pods -o wide
echo
echo "Next: podctl describe pod echo | podctl logs echo -c echoserver | podctl delete echo"
