#!/usr/bin/env python3
"""Image pull from a local registry: podctl vs. `ctr image pull` vs. `podman pull`, side by side.

Run as root:

    cargo build --release            # or pass --build
    bench/image-pull.py              # 5 timed pulls per tool, alternating
    bench/image-pull.py --runs 9 --layers 5 --layer-mib 20

Debian 12 packages it needs (it installs none): containerd runc docker-registry podman (+ python3).

What it does, in one run:
  * starts a private containerd (temporary root/state/socket, CRI plugin disabled) and Debian's
    docker-registry on 127.0.0.1 (temporary storage), and stops both by PID at the end;
  * builds an OCI image of --layers layers of --layer-mib MiB of incompressible bytes each (about
    100 MB by default), imports it and pushes it with `podctl image push --plain-http`, then
    removes every local copy (`ctr image rm --sync` and a check that the content store is empty);
  * per iteration, each tool in turn (the order rotates), from an empty store:
      podctl  `podctl image pull --plain-http REF`     (content store + unpack into overlayfs)
      ctr     `ctr image pull --plain-http REF`        (the same, containerd's own client)
      ctr -j2 the same with --max-concurrent-downloads 2 (podctl's default; ctr's is unlimited)
      podman  `podman pull --tls-verify=false REF`     (podman's own storage)
      (--compare-unpack) podctl with PODCTL_UNPACK=containerd: containerd's diff service unpacks
      (--podctl-jobs 3,5) podctl with --max-concurrent-downloads 3, 5
    and removes what was pulled (then syncs, so no tool pays for the last one's writeback)
    before the next tool runs;
  * then the time from `podctl create` to the first HTTP answer of a pod whose image (podctl's
    echo server, pushed to the registry) must be pulled, against the same pod with the image present;
  * prints medians (min-max) and the ratios podctl/ctr (target <= 0.8) and podctl/podman.
Exit codes: 0 ok, 1 the benchmark failed, 2 a prerequisite is missing.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def log(msg):
    print(f"[image-pull] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise SystemExit(f"[image-pull] {' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stderr}{r.stdout}")
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_image(path, name, layers, layer_mib):
    """An OCI image-layout tar: `layers` gzip layers of random bytes, each one file."""
    blobs, diff_ids, descs = {}, [], []
    for i in range(layers):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as t:
            data = os.urandom(layer_mib << 20)
            info = tarfile.TarInfo(f"data/layer-{i}.bin")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        raw = raw.getvalue()
        diff_ids.append(sha256(raw))
        gz = gzip.compress(raw, compresslevel=1, mtime=0)
        blobs[sha256(gz)] = gz
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(gz), "size": len(gz)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/none"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    blobs[sha256(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha256(config), "size": len(config)},
                           "layers": descs}).encode()
    blobs[sha256(manifest)] = manifest
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}}]}).encode()
    with tarfile.open(path, "w") as t:
        for fname, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)] + [
            (f"blobs/sha256/{d[7:]}", b) for d, b in blobs.items()
        ]:
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return sum(len(b) for b in blobs.values())


class Bench:
    def __init__(self, args):
        self.args = args
        self.podctl = Path(args.podctl)
        self.tmp = Path(tempfile.mkdtemp(prefix="podctl-pull-bench.", dir="/tmp"))
        self.sock = self.tmp / "containerd.sock"
        self.procs = []

    def spawn(self, cmd, logname):
        logf = open(self.tmp / logname, "w")
        p = subprocess.Popen([str(c) for c in cmd], stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def start(self):
        cfg = self.tmp / "containerd.toml"
        cfg.write_text(
            f'version = 2\nroot = "{self.tmp}/root"\nstate = "{self.tmp}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.sock}"\n[ttrpc]\n  address = "{self.sock}.ttrpc"\n')
        self.spawn(["containerd", "--config", cfg], "containerd.log")
        self.port = free_port()
        (self.tmp / "registry.yml").write_text(
            f"version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {self.tmp}/registry}}\n"
            f"  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{self.port}\n")
        self.spawn(["docker-registry", "serve", self.tmp / "registry.yml"], "registry.log")
        deadline = time.time() + 20
        while run(self.ctr("version"), check=False).returncode != 0 or not self.listening(self.port):
            if time.time() > deadline:
                raise SystemExit(f"[image-pull] containerd or the registry did not start; see {self.tmp}")
            time.sleep(0.1)

    @staticmethod
    def listening(port):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def ctr(self, *a, ns="bench"):
        return ["ctr", "--address", self.sock, "--namespace", ns, *a]

    def pod(self, *a, ns="bench"):
        return [self.podctl, "--address", self.sock, "--namespace", ns, "--state-dir", self.tmp / "state-podctl",
                "--log-dir", self.tmp / "logs", "--hosts-dir", self.tmp / "certs.d", *a]

    def empty_store(self, ref):
        for ns in ("bench", "src"):
            run(self.ctr("image", "rm", "--sync", ref, ns=ns), check=False)
        left = run(self.ctr("content", "ls", "-q")).stdout.split()
        if left:
            raise SystemExit(f"[image-pull] the content store is not empty after removing {ref}: {left}")

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        run(["umount", "-R", self.tmp / "root"], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def median_line(name, samples):
    return f"{name:8} median {statistics.median(samples):7.0f} ms  (min {min(samples):.0f}, max {max(samples):.0f}, n={len(samples)})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--layer-mib", type=int, default=20)
    ap.add_argument("--podctl", default=str(REPO / "target/release/podctl"))
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--compare-unpack", action="store_true",
                    help="also podctl with PODCTL_UNPACK=containerd (containerd's diff service unpacks)")
    ap.add_argument("--podctl-jobs", default="",
                    help="comma-separated --max-concurrent-downloads values to run podctl with, too")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("image-pull: run as root", file=sys.stderr)
        return 2
    if args.build:
        run(["cargo", "build", "--release", "--bin", "podctl"], cwd=REPO)
    tools = ["containerd", "ctr", "docker-registry"] + ([] if args.no_podman else ["podman"])
    missing = [t for t in tools if shutil.which(t) is None] + ([args.podctl] if not Path(args.podctl).exists() else [])
    if missing:
        print(f"image-pull: missing {missing} (apt-get install containerd docker-registry podman; cargo build --release)", file=sys.stderr)
        return 2
    b = Bench(args)
    try:
        b.start()
        ref = f"127.0.0.1:{b.port}/bench/big:1"
        tar = b.tmp / "big.tar"
        size = build_image(tar, ref, args.layers, args.layer_mib)
        log(f"image {ref}: {args.layers} layers, {size / 1e6:.1f} MB")
        run(b.pod("image", "import", tar, ns="src"))
        run(b.pod("image", "push", "--plain-http", ref, ns="src"))
        b.empty_store(ref)
        pulls = {
            "podctl": b.pod("image", "pull", "-q", "--plain-http", ref),
            "ctr": b.ctr("image", "pull", "--plain-http", ref),
            # ctr's default fetches every layer at once; with podctl's default of 2, for comparison.
            "ctr -j2": b.ctr("image", "pull", "--plain-http", "--max-concurrent-downloads", "2", ref),
        }
        if not args.no_podman:
            pulls["podman"] = ["podman", "pull", "-q", "--tls-verify=false", ref]
        envs = {}
        if args.compare_unpack:
            pulls["podctl cd-unpack"] = pulls["podctl"]
            envs["podctl cd-unpack"] = dict(os.environ, PODCTL_UNPACK="containerd")
        for jobs in filter(None, args.podctl_jobs.split(",")):
            pulls[f"podctl -j{jobs}"] = b.pod("image", "pull", "-q", "--plain-http", "--max-concurrent-downloads", jobs, ref)
        samples = {t: [] for t in pulls}
        order = list(pulls)
        for i in range(args.runs + 1):
            for tool in order:
                start = time.monotonic()
                run(pulls[tool], env=envs.get(tool))
                ms = (time.monotonic() - start) * 1000
                if i > 0:  # the first round warms page cache and binaries
                    samples[tool].append(ms)
                if tool == "podman":
                    run(["podman", "rmi", "-f", ref], check=False)
                else:
                    b.empty_store(ref)
                # Each pull starts from a quiet disk: the last one's dirty pages written back.
                os.sync()
                time.sleep(0.2)
            order = order[1:] + order[:1]
        print(f"\nPull of {size / 1e6:.0f} MB in {args.layers} layers from 127.0.0.1 into an empty store:")
        for tool, s in samples.items():
            print(median_line(tool, s))
        med = {t: statistics.median(s) for t, s in samples.items()}
        verdict = "met" if med["podctl"] <= 0.8 * med["ctr"] else "NOT met"
        print(f"ratio podctl/ctr    {med['podctl'] / med['ctr']:.2f}  (target <= 0.80: {verdict})")
        print(f"ratio podctl/ctr -j2 {med['podctl'] / med['ctr -j2']:.2f}")
        if "podman" in med:
            print(f"ratio podctl/podman {med['podctl'] / med['podman']:.2f}")

        # create -> first HTTP answer, image pulled by create vs. already present.
        echo = f"127.0.0.1:{b.port}/bench/echo:1"
        run([b.podctl, "image", "export", "podctl.local/echoserver:0.1", "-o", b.tmp / "echo.tar"])
        run(b.pod("image", "import", b.tmp / "echo.tar", ns="src"))
        run(b.pod("image", "tag", "podctl.local/echoserver:0.1", echo, ns="src"))
        run(b.pod("image", "push", "--plain-http", echo, ns="src"))
        hostport = free_port()
        manifest = b.tmp / "pod.yaml"
        manifest.write_text(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: pulled}}\nspec:\n  containers:\n"
                            f"  - name: echo\n    image: {echo}\n    imagePullPolicy: IfNotPresent\n"
                            f"    ports: [{{containerPort: 8080, hostPort: {hostport}}}]\n")
        starts = {"pulled": [], "present": []}
        for i in range(args.runs + 1):
            for case in ("pulled", "present"):
                if case == "pulled":
                    run(b.pod("image", "rm", echo), check=False)
                start = time.monotonic()
                run(b.pod("create", "-f", manifest))
                while True:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{hostport}/", timeout=1).read()
                        break
                    except Exception:
                        if time.monotonic() - start > 30:
                            raise SystemExit("[image-pull] the pod never answered")
                        time.sleep(0.005)
                if i > 0:
                    starts[case].append((time.monotonic() - start) * 1000)
                run(b.pod("delete", "pulled", "--grace-period", "0"))
        print("\npodctl create -> first HTTP answer (echo server pod):")
        for case, s in starts.items():
            print(median_line(case, s))
        print(f"pull adds {statistics.median(starts['pulled']) - statistics.median(starts['present']):.0f} ms (medians)")
        return 0
    finally:
        b.stop()


if __name__ == "__main__":
    sys.exit(main())
