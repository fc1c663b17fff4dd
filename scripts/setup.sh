#!/usr/bin/env bash
# Installs what podctl needs to build and run on a Debian host, idempotently: containerd, runc, the
# CNI plugins, iptables, protoc (containerd-client's build), busybox-static (test images), curl.
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables iproute2 busybox-static protobuf-compiler curl ca-certificates
  libseccomp-dev   # the node shim links libseccomp (youki's libcontainer)
  docker-registry apache2-utils openssl)   # the last three: the registry tests (distribution 2.8, htpasswd, a CA)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
# tests/node checks `kube generate --registry` output with kubernetes-validate (the API server's
# OpenAPI schemas, from PyPI).
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "setup: installing kubernetes-validate (pip)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install --quiet --root-user-action=ignore 'kubernetes-validate==1.*' 2>/dev/null ||
    python3 -m pip install --quiet --root-user-action=ignore --break-system-packages 'kubernetes-validate==1.*'
fi
