#!/usr/bin/env python3
"""Pod start/delete latency: podctl vs. a ctr-scripted pod vs. podman, same images, side by side.

Run as root from anywhere (the repository is found from this file's location):

    cargo build --release          # or pass --build
    bench/pod-start.py             # 10 timed iterations per tool (+1 warm-up each)
    bench/pod-start.py --runs 5 --trace-podctl

Debian 12 packages it needs (it installs none of them):

    containerd runc containernetworking-plugins iptables podman curl   (+ python3; linux-perf for --trace-podctl)

What it does, in one run:
  * starts a private containerd (temporary root/state/socket, CRI plugin disabled, its own
    containerd namespace) and stops it by PID at the end;
  * exports podctl's built-in echo server and pause images (`podctl image export`), imports
    both into that containerd (`ctr image import`, unpacked) and into podman (`podman load`);
  * per iteration, for each tool in turn (the order rotates every iteration):
      podctl  `podctl create -f pod.yaml`                 / `podctl delete NAME`
      ctr     ip netns add + CNI ADD (loopback, bridge, portmap) + `ctr run -d` pause +
              `ctr run -d --with-ns network,ipc,uts` echo  / SIGTERM + wait + task rm, ctr c rm,
              CNI DEL (portmap, bridge), ip netns del
      podman  `podman pod create -p` + `podman run -d --pod` / `podman pod rm -f`
    "start" = from the first command until the echo server answers HTTP 200 on 127.0.0.1:hostPort
    (polled every --interval); "delete" = the delete command(s) until they return;
  * prints medians (min-max), the ratios against the targets, per-step medians, the containerd
    event timeline (`ctr events`) of each start/delete, and writes the raw samples to
    bench/results/ (CSV + JSON);
  * with --trace-podctl, a few extra untimed podctl create/delete runs under `perf record`
    (scheduler tracepoints) show where podctl's time goes: the netns, each CNI plugin (and how
    many iptables processes it ran), and containerd's events.

The only host setting it changes on purpose: podman on this VM needs
`default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]` under [containers] in
/etc/containers/containers.conf; it is added if absent (other settings are kept).
Everything else it creates (containers, tasks, snapshots, netns, CNI IPs and iptables rules,
podman pods and the images it loaded into podman, its bridge and IPAM dir) is removed at the end,
also on failure or Ctrl-C. Exit codes: 0 ok, 1 benchmark failed, 2 prerequisite missing,
3 something was left behind.
"""

import argparse
import calendar
import csv
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

ECHO_IMAGE = "podctl.local/echoserver:0.1"
PAUSE_IMAGE = "podctl.local/pause:0.1"
CONTAINER_PORT = 8080
TOOLS = ("podctl", "ctr", "podman")
# (op, other tool, podctl/other must be <= this)
TARGETS = [("start", "ctr", 0.6), ("start", "podman", 0.5), ("delete", "podman", 0.5)]

# The ctr-scripted pod's network: the same kind of conflist as podctl's DEFAULT_CONFLIST
# (crates/podctl-sandbox/src/cni/network.rs), under another name, bridge and subnet so that the two never meet.
CTR_NET_NAME = "podctl-bench-ctr"
CTR_BRIDGE = "pbctr0"
CTR_SUBNET = "10.91.0.0/24"
CTR_CONFLIST = {
    "cniVersion": "1.0.0",
    "name": CTR_NET_NAME,
    "plugins": [
        {
            "type": "bridge",
            "bridge": CTR_BRIDGE,
            "isGateway": True,
            "ipMasq": True,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": CTR_SUBNET}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        },
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ],
}
# podctl's built-in network, for the leftovers check (and the fallback cleanup if podctl fails).
PODCTL_NET_NAME = "podctl"
PODCTL_BRIDGE = "podctl0"
CNI_PLUGINS = ("loopback", "bridge", "host-local", "portmap")
CNI_STATE_DIR = Path("/var/lib/cni/networks")

CONTAINERS_CONF = Path("/etc/containers/containers.conf")
WANTED_ULIMITS = {"nofile": "nofile=4096:4096", "nproc": "nproc=4096:4096"}

EXIT_FAILED, EXIT_PREREQ, EXIT_LEAK = 1, 2, 3


BUSYBOX_BENCH_IMAGE = "podctl.bench/busybox:1"


class BenchError(Exception):
    """The benchmark cannot go on."""


class Prereq(BenchError):
    """Something the benchmark needs is missing."""


class Interrupted(BaseException):
    """SIGINT/SIGTERM/SIGHUP: run the cleanup, then stop."""


# A signal only sets this; the benchmark stops at the next step boundary, so a CNI plugin or a
# ctr call is never killed half-way (a bridge DEL killed mid-way leaves its masquerade chain).
# A second signal stops at once.
PENDING_SIGNAL = []


def on_signal(signum, _frame):
    name = signal.Signals(signum).name
    if PENDING_SIGNAL:
        raise Interrupted(name)
    PENDING_SIGNAL.append(name)
    log(f"{name}: stopping after the current step (again to stop at once)")


def checkpoint():
    if PENDING_SIGNAL:
        raise Interrupted(PENDING_SIGNAL[0])


def log(msg=""):
    print(msg, file=sys.stderr, flush=True)


def now():
    return time.perf_counter_ns()


def ms(ns):
    return ns / 1e6


# Only 127.0.0.1 and our own pods: never let curl (or a plugin) use a proxy.
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")
    and not k.startswith("CONTAINERD_")
    and not k.startswith("PODCTL_")
}
CLEAN_ENV["PATH"] = CLEAN_ENV.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"


def run(cmd, *, input=None, env=None, check=True, timeout=120):
    """Runs a command, captures its output; raises BenchError on failure when `check`."""
    try:
        p = subprocess.run(
            [str(c) for c in cmd],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env or CLEAN_ENV,
            timeout=timeout,
            start_new_session=True,  # a terminal Ctrl-C reaches only this script
        )
    except subprocess.TimeoutExpired as e:
        if check:
            raise BenchError(f"`{' '.join(map(str, cmd))}` did not finish within {timeout}s") from e
        return subprocess.CompletedProcess(cmd, -1, "", "timeout")
    if check and p.returncode != 0:
        raise BenchError(
            f"`{' '.join(map(str, cmd))}` failed with exit code {p.returncode}:\n"
            f"{(p.stdout + p.stderr).strip()}"
        )
    return p


# ---------------------------------------------------------------------------------------------
# One timed operation: its steps (each command's duration) and, later, containerd's events.


class Op:
    def __init__(self, tool, run_no, op):
        self.tool, self.run, self.op = tool, run_no, op
        self.steps = []
        self.polls = 0
        self.cmd_ns = None
        self.total_ns = None
        self.events = []
        self.wall0 = time.time_ns()
        self.t0 = now()
        self.wall1 = None

    def step(self, name, fn):
        t = now()
        result = fn()
        self.steps.append((name, ms(now() - t)))
        checkpoint()
        return result

    def commands_done(self):
        self.cmd_ns = now() - self.t0

    def finish(self, at=None):
        self.total_ns = (at or now()) - self.t0
        if self.cmd_ns is None:
            self.cmd_ns = self.total_ns
        self.wall1 = time.time_ns()

    @property
    def warmup(self):
        return self.run == 0

    def as_dict(self):
        return {
            "tool": self.tool,
            "run": self.run,
            "warmup": self.warmup,
            "op": self.op,
            "total_ms": round(ms(self.total_ns), 3),
            "commands_ms": round(ms(self.cmd_ns), 3),
            "polls": self.polls,
            "steps": [{"name": n, "ms": round(v, 3)} for n, v in self.steps],
            "events": self.events,
        }


# ---------------------------------------------------------------------------------------------
# Readiness probe


def probe_curl(port):
    p = subprocess.run(
        ["curl", "-s", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
         f"http://127.0.0.1:{port}/"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=CLEAN_ENV,
    )
    return p.stdout.strip() == "200"


def probe_python(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while b"\r\n" not in data and len(data) < 1024:
                chunk = s.recv(1024)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\r\n", 1)[0].split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


def wait_http(op, port, probe, interval, timeout):
    deadline = now() + int(timeout * 1e9)
    while True:
        op.polls += 1
        if probe(port):
            return now()
        if now() > deadline:
            raise BenchError(f"{op.tool}: 127.0.0.1:{port} did not answer HTTP 200 within {timeout}s")
        checkpoint()
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Host state: ports, iptables, CNI state, bridges


def port_bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def nat_rules_for_port(port):
    out = run(["iptables-save", "-t", "nat"], check=False).stdout
    return [l for l in out.splitlines() if re.search(rf"--dport {port}(\s|$)", l)]


def port_problem(port):
    if not port_bindable(port):
        return f"host port {port} is in use by a host process"
    rules = nat_rules_for_port(port)
    if rules:
        return f"host port {port} has NAT rules: {rules[0]}" + (" ..." if len(rules) > 1 else "")
    return None


def iptables_lines():
    out = run(["iptables-save"], check=False).stdout
    lines = []
    for l in out.splitlines():
        if l.startswith("#"):
            continue
        lines.append(re.sub(r"\[\d+:\d+\]", "", l).rstrip())
    return lines


def netns_list():
    d = Path("/run/netns")
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def cni_ip_files(network):
    """host-local's reservations: file name = IP, content = container ID + ifname."""
    d = CNI_STATE_DIR / network
    if not d.is_dir():
        return {}
    res = {}
    for p in d.iterdir():
        if p.name in ("lock",) or p.name.startswith("last_reserved_ip"):
            continue
        try:
            res[p.name] = (p.read_text().split() or [""])[0]
        except OSError:
            pass
    return res


def link_exists(name):
    return Path(f"/sys/class/net/{name}").exists()


def bridge_ports(name):
    d = Path(f"/sys/class/net/{name}/brif")
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


# ---------------------------------------------------------------------------------------------
# podman's containers.conf


def ensure_podman_ulimits(path=CONTAINERS_CONF):
    """Adds default_ulimits (nofile, nproc) under [containers] when absent; keeps the rest."""
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines(keepends=True)
    start = end = None
    for i, l in enumerate(lines):
        s = l.strip()
        if re.match(r"^\[\[?[^\]]+\]\]?", s):
            if start is None and s.split("#")[0].strip() == "[containers]":
                start = i
            elif start is not None and end is None:
                end = i
    if start is not None and end is None:
        end = len(lines)

    def quoted(entries):
        return "default_ulimits = [" + ", ".join(f'"{e}"' for e in entries) + "]\n"

    if start is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        new = text + sep + ("\n" if text else "") + "[containers]\n" + quoted(WANTED_ULIMITS.values())
        action = f"added [containers] default_ulimits to {path}"
    else:
        key = None
        for i in range(start + 1, end):
            if re.match(r"^\s*default_ulimits\s*=", lines[i]):
                key = i
                break
        if key is None:
            lines.insert(start + 1, quoted(WANTED_ULIMITS.values()))
            new = "".join(lines)
            action = f"added default_ulimits under [containers] in {path}"
        else:
            # The value may span lines: take lines until the brackets balance.
            j, value = key, ""
            while j < end:
                value += lines[j].split("#")[0] if j > key else lines[j].split("=", 1)[1].split("#")[0]
                if value.count("[") and value.count("[") <= value.count("]"):
                    break
                j += 1
            entries = re.findall(r'"([^"]*)"', value)
            kinds = {e.split("=", 1)[0].strip() for e in entries}
            missing = [v for k, v in WANTED_ULIMITS.items() if k not in kinds]
            if not missing:
                return None
            lines[key : j + 1] = [quoted(entries + missing)]
            new = "".join(lines)
            action = f"added {', '.join(missing)} to default_ulimits in {path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".podctl-bench.tmp")
    tmp.write_text(new)
    if path.exists():
        shutil.copymode(path, tmp)
    else:
        os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return action


# ---------------------------------------------------------------------------------------------
# The environment of one benchmark run


class Bench:
    def __init__(self, args):
        self.args = args
        self.pid = os.getpid()
        self.tag = f"pb{self.pid}"
        self.ns = f"podctl-bench-{self.pid}"
        self.tmp = None
        self.sock = None
        self.containerd = None
        self.events_proc = None
        self.events_file = None
        self.podctl = None
        self.cni_dir = None
        self.ports = dict(zip(TOOLS, args.ports))
        self.ops = []
        # what we made, for the cleanup
        self.podctl_pods = []
        self.ctr_pods = []
        self.podman_pods = []
        self.podman_loaded = []
        self.before = {}
        self.load = ["?", "?"]

    # -- prerequisites -------------------------------------------------------------------------

    def check_prereqs(self):
        a = self.args
        problems = []
        if os.geteuid() != 0:
            problems.append("must run as root (netns, CNI, iptables, containerd)")
        needed = ["containerd", "ctr", "runc", "containerd-shim-runc-v2", "ip", "iptables", "iptables-save"]
        if "podman" in a.tools:
            needed.append("podman")
        if a.probe == "curl":
            needed.append("curl")
        if a.trace_podctl:
            needed.append("perf")
        for tool in needed:
            if shutil.which(tool, path=CLEAN_ENV["PATH"]) is None:
                problems.append(f"`{tool}` is not on PATH (apt-get install containerd runc iptables podman curl)")
        dirs = [Path(a.cni_bin_dir)] if a.cni_bin_dir else [Path("/opt/cni/bin"), Path("/usr/lib/cni")]
        for d in dirs:
            if all((d / p).is_file() for p in CNI_PLUGINS):
                self.cni_dir = d
                break
        if self.cni_dir is None:
            problems.append(
                f"CNI plugins {', '.join(CNI_PLUGINS)} not found in {' or '.join(map(str, dirs))} "
                "(apt-get install containernetworking-plugins)"
            )
        if a.build:
            log("building podctl: cargo build --release (waits if someone else holds the cargo lock)")
            p = subprocess.run(["cargo", "build", "--release"], cwd=REPO, env=CLEAN_ENV)
            if p.returncode != 0:
                raise Prereq("cargo build --release failed")
        self.podctl = Path(a.podctl) if a.podctl else REPO / "target/release/podctl"
        if not os.access(self.podctl, os.X_OK):
            problems.append(f"{self.podctl} does not exist: run `cargo build --release` (or pass --build / --podctl)")
        if len(set(a.ports)) != len(a.ports):
            problems.append(f"--ports must be {len(TOOLS)} distinct ports")
        elif os.geteuid() == 0:
            for tool, port in self.ports.items():
                why = port_problem(port)
                if why:
                    problems.append(f"{why} (needed for {tool}; pick others with --ports)")
        # The ctr pod's subnet must not collide with a route on another interface.
        routes = run(["ip", "-4", "route", "show", CTR_SUBNET], check=False).stdout.split()
        if routes and f"{CTR_BRIDGE}" not in routes:
            problems.append(f"{CTR_SUBNET} is already routed ({' '.join(routes)}); the ctr-scripted pod needs it")
        if problems:
            raise Prereq("\n  ".join(["prerequisites missing:"] + problems))

    # -- host snapshot for the leftovers check -------------------------------------------------

    def snapshot(self):
        return {
            "netns": netns_list(),
            "iptables": iptables_lines(),
            "cni_ips": {n: cni_ip_files(n) for n in (CTR_NET_NAME, PODCTL_NET_NAME)},
            "cni_dirs": {n: (CNI_STATE_DIR / n).exists() for n in (CTR_NET_NAME, PODCTL_NET_NAME)},
            "bridges": {b: link_exists(b) for b in (CTR_BRIDGE, PODCTL_BRIDGE)},
            "podman_pods": self.podman_pod_names() if "podman" in self.args.tools else [],
        }

    def podman_pod_names(self):
        out = run(["podman", "pod", "ls", "--format", "{{.Name}}"], check=False).stdout
        return sorted(out.split())

    # -- private containerd --------------------------------------------------------------------

    def start_containerd(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="podctl-bench.", dir="/tmp"))
        self.sock = self.tmp / "containerd.sock"
        cfg = self.tmp / "containerd.toml"
        cfg.write_text(
            f'version = 2\nroot = "{self.tmp}/root"\nstate = "{self.tmp}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.sock}"\n[ttrpc]\n  address = "{self.sock}.ttrpc"\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{self.tmp}/opt"\n'
        )
        self.runc_root_existed = Path(f"/run/containerd/runc/{self.ns}").exists()
        logf = open(self.tmp / "containerd.log", "w")
        # Own session: a Ctrl-C at the terminal must not take containerd down before the cleanup.
        self.containerd = subprocess.Popen(
            ["containerd", "--config", str(cfg)], stdout=logf, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=CLEAN_ENV, start_new_session=True,
        )
        logf.close()
        deadline = time.time() + 20
        while True:
            if self.containerd.poll() is not None:
                raise BenchError(f"containerd exited ({self.containerd.returncode}); see {self.tmp}/containerd.log")
            if self.sock.exists() and run(self.ctr("version"), check=False).returncode == 0:
                break
            if time.time() > deadline:
                raise BenchError(f"containerd did not answer within 20s; see {self.tmp}/containerd.log")
            checkpoint()
            time.sleep(0.05)
        log(f"private containerd pid {self.containerd.pid}, socket {self.sock}, namespace {self.ns}")

    def ctr(self, *args):
        return ["ctr", "--address", str(self.sock), "--namespace", self.ns, *args]

    def podctl_cmd(self, *args):
        return [
            str(self.podctl), "--address", str(self.sock), "--namespace", self.ns,
            "--state-dir", str(self.tmp / "podctl-state"), "--log-dir", str(self.tmp / "podctl-logs"),
            "--cni-bin-dir", str(self.cni_dir), *args,
        ]

    def start_events(self):
        self.events_file = self.tmp / "events.txt"
        f = open(self.events_file, "w")
        self.events_proc = subprocess.Popen(
            ["ctr", "--address", str(self.sock), "events"], stdout=f, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=CLEAN_ENV, start_new_session=True,
        )
        f.close()

    # -- images --------------------------------------------------------------------------------

    def prepare_images(self):
        self.echo_tar = self.tmp / "echo.tar"
        self.pause_tar = self.tmp / "pause.tar"
        run([self.podctl, "image", "export", ECHO_IMAGE, "-o", self.echo_tar])
        run([self.podctl, "image", "export", PAUSE_IMAGE, "-o", self.pause_tar])
        for tar in (self.echo_tar, self.pause_tar):
            run(self.ctr("image", "import", tar))
        listed = run(self.podctl_cmd("image", "ls")).stdout
        for image in (ECHO_IMAGE, PAUSE_IMAGE):
            if image not in listed:
                raise BenchError(f"{image} is not listed by `podctl image ls` after `ctr image import`:\n{listed}")
        if "podman" in self.args.tools:
            for image, tar in ((ECHO_IMAGE, self.echo_tar), (PAUSE_IMAGE, self.pause_tar)):
                existed = run(["podman", "image", "exists", image], check=False).returncode == 0
                out = run(["podman", "load", "-i", tar]).stdout
                if not existed:
                    self.podman_loaded.append(image)
                if run(["podman", "image", "exists", image], check=False).returncode != 0:
                    # An archive whose name podman did not keep: tag what it loaded.
                    m = re.search(r"Loaded image(?:\(s\))?: (\S+)", out)
                    if not m:
                        raise BenchError(f"podman load -i {tar} did not say what it loaded:\n{out}")
                    run(["podman", "tag", m.group(1).split(",")[0], image])
                    self.podman_loaded.append(image)

    # -- podctl ----------------------------------------------------------------------------------

    def podctl_up(self, op, name, port):
        manifest = self.tmp / f"{name}.yaml"
        manifest.write_text(
            "apiVersion: v1\nkind: Pod\nmetadata:\n"
            f"  name: {name}\nspec:\n  containers:\n  - name: echo\n    image: {ECHO_IMAGE}\n"
            f"    ports:\n    - containerPort: {CONTAINER_PORT}\n      hostPort: {port}\n"
        )
        self.podctl_pods.append(name)
        out = op.step("podctl create", lambda: run(self.podctl_cmd("create", "-f", manifest))).stdout
        if f"pod/{name} created" not in out:
            raise BenchError(f"podctl create printed {out!r}, expected 'pod/{name} created'")

    def podctl_down(self, op, name):
        op.step("podctl delete", lambda: run(self.podctl_cmd("delete", name)))
        self.podctl_pods.remove(name)

    # -- ctr-scripted pod --------------------------------------------------------------------------

    def ctr_up(self, op, pod):
        self.ctr_pods.append(pod)
        pod.up(op)

    def ctr_down(self, op, pod):
        pod.down(op)
        self.ctr_pods.remove(pod)

    # -- podman --------------------------------------------------------------------------------

    def podman_up(self, op, name, port):
        self.podman_pods.append(name)
        op.step("podman pod create", lambda: run(
            ["podman", "pod", "create", "--name", name, "--infra-image", PAUSE_IMAGE, "-p", f"{port}:{CONTAINER_PORT}"]))
        op.step("podman run -d --pod", lambda: run(
            ["podman", "run", "-d", "--pull", "never", "--pod", name, "--name", f"{name}-echo", ECHO_IMAGE]))

    def podman_down(self, op, name):
        op.step("podman pod rm -f", lambda: run(["podman", "pod", "rm", "-f", name]))
        self.podman_pods.remove(name)

    # -- one iteration -------------------------------------------------------------------------

    def iteration(self, run_no):
        a = self.args
        probe = probe_curl if a.probe == "curl" else probe_python
        order = list(a.tools)
        k = run_no % len(order)
        order = order[k:] + order[:k]
        for tool in order:
            port = self.ports[tool]
            suffix = "w" if run_no == 0 else str(run_no)
            name = f"{self.tag}-{tool}-{suffix}"
            if tool == "ctr":
                handle = CtrPod(self, name, port)
            else:
                handle = name
            up = {"podctl": lambda o: self.podctl_up(o, name, port),
                  "ctr": lambda o: self.ctr_up(o, handle),
                  "podman": lambda o: self.podman_up(o, name, port)}[tool]
            down = {"podctl": lambda o: self.podctl_down(o, name),
                    "ctr": lambda o: self.ctr_down(o, handle),
                    "podman": lambda o: self.podman_down(o, name)}[tool]

            op = Op(tool, run_no, "start")
            up(op)
            op.commands_done()
            ready = wait_http(op, port, probe, a.interval, a.timeout)
            op.finish(ready)
            self.ops.append(op)
            time.sleep(a.settle)

            op = Op(tool, run_no, "delete")
            down(op)
            op.finish()
            self.ops.append(op)
            self.check_port_released(tool, port)
            time.sleep(a.settle)
            label = "warm-up" if run_no == 0 else f"run {run_no}"
            s, d = self.ops[-2], self.ops[-1]
            log(f"  {label:>8} {tool:<7} start {ms(s.total_ns):8.1f} ms (commands {ms(s.cmd_ns):7.1f}, "
                f"{s.polls} polls)   delete {ms(d.total_ns):8.1f} ms")

    def check_port_released(self, tool, port):
        deadline = time.time() + 5
        while True:
            why = port_problem(port)
            if why is None:
                return
            if time.time() > deadline:
                raise BenchError(f"{tool}: after delete, {why}")
            time.sleep(0.05)

    # -- podctl under perf (optional, untimed) -------------------------------------------------

    def trace_podctl(self, runs):
        """`runs` untimed podctl creates and deletes under `perf record` (scheduler tracepoints,
        system-wide: cheap, unlike strace): {"create"|"delete": [(epoch ns of the execve, rows)]}."""
        port = self.ports["podctl"]
        traces = {}
        for i in range(runs):
            name = f"{self.tag}-podctl-trace{i}"
            manifest = self.tmp / f"{name}.yaml"
            manifest.write_text(
                "apiVersion: v1\nkind: Pod\nmetadata:\n"
                f"  name: {name}\nspec:\n  containers:\n  - name: echo\n    image: {ECHO_IMAGE}\n"
                f"    ports:\n    - containerPort: {CONTAINER_PORT}\n      hostPort: {port}\n"
            )
            self.podctl_pods.append(name)

            def traced(what, *args):
                data = self.tmp / f"{name}-{what}.perf"
                wall_minus_mono = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                run(["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-a", "-o", data, "-e",
                     "sched:sched_process_exec,sched:sched_process_exit,sched:sched_process_fork,"
                     "syscalls:sys_enter_unshare",
                     "--", *self.podctl_cmd(*args)])
                script = run(["perf", "script", "-i", data, "-F", "comm,pid,tid,time,event,trace"]).stdout
                traces.setdefault(what, []).append(summarize_perf(script, self.cni_dir, wall_minus_mono))

            traced("create", "create", "-f", manifest)
            op = Op("podctl", -1, "trace")
            wait_http(op, port, probe_python, self.args.interval, self.args.timeout)
            time.sleep(self.args.settle)
            traced("delete", "delete", name)
            self.podctl_pods.remove(name)
            self.check_port_released("podctl", port)
            time.sleep(self.args.settle)
        return traces

    # -- cleanup -------------------------------------------------------------------------------

    # -- deleting many pods at once ------------------------------------------------------------

    def busybox_image(self):
        """Imports an OCI image of Debian's busybox-static (sh and sleep as applets) into the
        private containerd, for members that ignore SIGTERM."""
        import hashlib, io, json, tarfile

        def blob(data):
            return "sha256:" + hashlib.sha256(data).hexdigest(), data

        layer_buf = io.BytesIO()
        with tarfile.open(fileobj=layer_buf, mode="w") as t:
            d = tarfile.TarInfo("bin"); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
            t.add("/bin/busybox", arcname="bin/busybox")
            for applet in ("sh", "sleep"):
                l = tarfile.TarInfo(f"bin/{applet}"); l.type = tarfile.SYMTYPE; l.linkname = "busybox"; t.addfile(l)
        layer_digest, layer = blob(layer_buf.getvalue())
        config_digest, config = blob(json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }).encode())
        manifest_digest, manifest = blob(json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}],
        }).encode())
        index = json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": len(manifest),
        }]}).encode()
        path = self.tmp / "busybox.tar"
        with tarfile.open(path, "w") as t:
            for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)] + [
                (f"blobs/sha256/{d.split(':')[1]}", b) for d, b in
                [(layer_digest, layer), (config_digest, config), (manifest_digest, manifest)]
            ]:
                info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
        run(self.podctl_cmd("image", "import", str(path), "--name", BUSYBOX_BENCH_IMAGE))

    def delete_many(self, count, rounds):
        """`podctl delete` of `count` pods whose member ignores SIGTERM, grace period 2 s: they are
        stopped together, so the whole delete takes about one grace period."""
        self.busybox_image()
        took = []
        for r in range(rounds):
            names = [f"{self.tag}-many-{r}-{i}" for i in range(count)]
            for name in names:
                manifest = (
                    f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n"
                    f"  terminationGracePeriodSeconds: 2\n  containers:\n  - name: stubborn\n"
                    f"    image: {BUSYBOX_BENCH_IMAGE}\n    command: [sh, -c, \"trap '' TERM; while :; do sleep 1; done\"]\n"
                )
                self.podctl_pods.append(name)
                run(self.podctl_cmd("create", "-f", "-"), input=manifest)
            checkpoint()
            began = time.monotonic()
            run(self.podctl_cmd("delete", *names), timeout=120)
            took.append(time.monotonic() - began)
            for name in names:
                self.podctl_pods.remove(name)
            log(f"delete of {count} pods ignoring SIGTERM (grace 2 s), round {r + 1}: {took[-1]:.2f} s")
        self.many = (count, took)

    def cleanup(self):
        """Best effort, idempotent, every step independent of the others."""
        def attempt(what, fn):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep cleaning
                log(f"cleanup: {what}: {e}")

        for name in list(self.podman_pods):
            attempt(f"podman pod {name}", lambda: run(["podman", "pod", "rm", "-f", "--ignore", name], check=False))
        for image in self.podman_loaded:
            attempt(f"podman image {image}", lambda: run(["podman", "rmi", "--ignore", image], check=False))
        if self.containerd is not None and self.containerd.poll() is None:
            for name in list(self.podctl_pods):
                attempt(f"podctl pod {name}", lambda: run(
                    self.podctl_cmd("delete", "--ignore-not-found", "--grace-period", "2", name), check=False))
            for pod in list(self.ctr_pods):
                attempt(f"ctr pod {pod.name}", pod.force_cleanup)
            attempt("containerd tasks/containers", self.sweep_containerd)
        else:
            for pod in list(self.ctr_pods):
                attempt(f"ctr pod {pod.name}", pod.force_cleanup)
        attempt("leftover netns", self.sweep_netns)
        attempt("leftover iptables rules", self.sweep_iptables)
        if self.events_proc is not None and self.events_proc.poll() is None:
            self.events_proc.terminate()
            try:
                self.events_proc.wait(5)
            except subprocess.TimeoutExpired:
                self.events_proc.kill()
                self.events_proc.wait()
        if self.containerd is not None and self.containerd.poll() is None:
            self.containerd.terminate()
            try:
                self.containerd.wait(15)
            except subprocess.TimeoutExpired:
                self.containerd.kill()
                self.containerd.wait()
        if self.sock is not None:
            attempt("shims", self.sweep_shims)
        attempt("bridges and IPAM dirs", self.sweep_networks)
        runc_root = Path(f"/run/containerd/runc/{self.ns}")
        if runc_root.is_dir() and not getattr(self, "runc_root_existed", True):
            attempt(str(runc_root), lambda: runc_root.rmdir())
        if self.tmp is not None:
            attempt("mounts under " + str(self.tmp), self.sweep_mounts)
            if self.args.keep_tmp:
                log(f"kept {self.tmp}")
            elif not [m for m in mounts() if m.startswith(str(self.tmp) + "/")]:
                attempt(str(self.tmp), lambda: shutil.rmtree(self.tmp))
            else:
                log(f"cleanup: {self.tmp} still has mounts; not removed")

    def sweep_containerd(self):
        """Whatever is still in our containerd namespace (a tool that failed half-way)."""
        tasks = run(self.ctr("task", "ls"), check=False).stdout.splitlines()[1:]
        for line in tasks:
            tid = line.split()[0]
            run(self.ctr("task", "kill", "-a", "-s", "SIGKILL", tid), check=False)
        for line in tasks:
            tid = line.split()[0]
            for _ in range(100):
                if run(self.ctr("task", "rm", "-f", tid), check=False).returncode == 0:
                    break
                time.sleep(0.05)
        containers = run(self.ctr("container", "ls", "-q"), check=False).stdout.split()
        if containers:
            run(self.ctr("container", "rm", *containers), check=False)

    def sweep_netns(self):
        """Namespaces of ours still pinned: CNI DEL with their network, then unpin."""
        for nsname in netns_list():
            if nsname.startswith(f"{self.tag}-ctr-"):
                CtrPod(self, nsname, self.ports["ctr"]).force_cleanup()
            elif nsname.startswith(f"podctl-{self.tag}-podctl-"):
                sandbox = nsname[len("podctl-"):]
                conflist = podctl_default_conflist()
                if conflist:
                    cni_chain(self.cni_dir, conflist, "DEL", sandbox, f"/run/netns/{nsname}", "eth0",
                              [{"hostPort": self.ports["podctl"], "containerPort": CONTAINER_PORT,
                                "protocol": "tcp"}], None, check=False)
                run(["ip", "netns", "del", nsname], check=False)

    def sweep_iptables(self):
        """Last resort: rules whose CNI comment names one of our pods (id "pbPID-..."), and the
        chains that held only such rules (a plugin interrupted half-way leaves them)."""
        for table in ("nat", "filter", "mangle"):
            lines = run(["iptables-save", "-t", table], check=False).stdout.splitlines()
            ours = [l for l in lines if l.startswith("-A ") and f'\\"{self.tag}-' in l]
            if not ours:
                continue
            chains = {l.split()[1] for l in ours}
            for l in ours:
                log(f"cleanup: iptables -t {table} -D {l[3:]}")
                run(["iptables", "-w", "-t", table, "-D", *shlex.split(l)[1:]], check=False)
            rest = run(["iptables-save", "-t", table], check=False).stdout.splitlines()
            for c in sorted(chains):
                if c.startswith("CNI-") and not any(l.startswith(f"-A {c} ") or f" -j {c}" in l for l in rest):
                    log(f"cleanup: iptables -t {table} -X {c}")
                    run(["iptables", "-w", "-t", table, "-X", c], check=False)

    def sweep_shims(self):
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and os.path.basename(argv[0]).startswith(b"containerd-shim") and str(self.sock).encode() in argv:
                log(f"cleanup: killing leftover shim pid {pid_dir.name}")
                os.kill(int(pid_dir.name), signal.SIGKILL)

    def sweep_networks(self):
        """Bridges and host-local dirs the run brought into being, once nothing uses them."""
        for net, bridge in ((CTR_NET_NAME, CTR_BRIDGE), (PODCTL_NET_NAME, PODCTL_BRIDGE)):
            if not self.before:
                break
            if not self.before["bridges"].get(bridge) and link_exists(bridge) and not bridge_ports(bridge):
                run(["ip", "link", "del", bridge], check=False)
            d = CNI_STATE_DIR / net
            if not self.before["cni_dirs"].get(net) and d.is_dir() and not cni_ip_files(net):
                shutil.rmtree(d, ignore_errors=True)

    def sweep_mounts(self):
        for m in sorted(mounts(), key=len, reverse=True):
            if m.startswith(str(self.tmp) + "/"):
                run(["umount", "-l", m], check=False)

    # -- leftovers check -------------------------------------------------------------------------

    def leftovers(self):
        after = self.snapshot()
        before = self.before
        problems = []
        new_ns = [n for n in after["netns"] if n not in before["netns"] and self.tag in n]
        if new_ns:
            problems.append(f"netns left: {', '.join(new_ns)}")
        for net in (CTR_NET_NAME, PODCTL_NET_NAME):
            ours = {ip: cid for ip, cid in after["cni_ips"][net].items() if self.tag in cid}
            if ours:
                problems.append(f"CNI IPs left in {CNI_STATE_DIR / net}: {ours}")
        added = sorted(set(after["iptables"]) - set(before["iptables"]))
        if added:
            problems.append("iptables lines added:\n      " + "\n      ".join(added[:20]))
        pods = [p for p in after["podman_pods"] if self.tag in p]
        if pods:
            problems.append(f"podman pods left: {', '.join(pods)}")
        for port in self.ports.values():
            why = port_problem(port)
            if why:
                problems.append(why)
        cni_before = sum("CNI" in l for l in before["iptables"])
        cni_after = sum("CNI" in l for l in after["iptables"])
        summary = (
            f"netns {len(before['netns'])} -> {len(after['netns'])}, "
            f"iptables lines mentioning CNI {cni_before} -> {cni_after}, "
            f"podman pods {len(before['podman_pods'])} -> {len(after['podman_pods'])}, "
            f"CNI IPs {sum(map(len, before['cni_ips'].values()))} -> {sum(map(len, after['cni_ips'].values()))}"
        )
        return summary, problems


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def mounts():
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            res.append(re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), mp))
    return res


def podctl_default_conflist():
    """podctl's DEFAULT_CONFLIST, read from the source (only for the fallback cleanup)."""
    try:
        src = (REPO / "crates/podctl-sandbox/src/cni/network.rs").read_text()
        m = re.search(r'DEFAULT_CONFLIST: &str = r#"(.*?)"#;', src, re.S)
        return json.loads(m.group(1)) if m else None
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# CNI by hand (what a user scripting ctr would do; cnitool is not packaged in Debian)


def cni_exec(cni_dir, plugin, command, container_id, netns, ifname, conf, check=True):
    env = dict(CLEAN_ENV)
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(cni_dir),
    })
    p = run([Path(cni_dir) / plugin], input=json.dumps(conf), env=env, check=False, timeout=60)
    if p.returncode != 0:
        if check:
            raise BenchError(f"CNI {command} {plugin} failed ({p.returncode}): {(p.stdout + p.stderr).strip()}")
        return None
    return json.loads(p.stdout) if p.stdout.strip() else None


def plugin_conf(conflist, plugin, prev, port_mappings):
    conf = dict(plugin)
    conf["name"] = conflist["name"]
    conf["cniVersion"] = conflist["cniVersion"]
    if prev is not None:
        conf["prevResult"] = prev
    if plugin.get("capabilities", {}).get("portMappings") and port_mappings:
        conf["runtimeConfig"] = {"portMappings": port_mappings}
    return conf


def cni_chain(cni_dir, conflist, command, container_id, netns, ifname, port_mappings, prev, check=True, op=None):
    """ADD: each plugin in order with the previous result; DEL: reverse order with the final one."""
    plugins = conflist["plugins"] if command == "ADD" else list(reversed(conflist["plugins"]))
    result = prev
    for plugin in plugins:
        conf = plugin_conf(conflist, plugin, result if command == "ADD" else prev, port_mappings)
        call = lambda: cni_exec(cni_dir, plugin["type"], command, container_id, netns, ifname, conf, check)  # noqa: E731
        out = op.step(f"cni {command} {plugin['type']}", call) if op else call()
        if command == "ADD" and out is not None:
            result = out
    return result


class CtrPod:
    """A pod scripted with ip netns + CNI plugins + ctr, as a user would do it by hand."""

    def __init__(self, bench, name, port):
        self.b = bench
        self.name = name
        self.netns_path = f"/var/run/netns/{name}"
        self.pause = f"{name}-pause"
        self.echo = f"{name}-echo"
        self.ports = [{"hostPort": port, "containerPort": CONTAINER_PORT, "protocol": "tcp"}]
        self.result = None
        self.logs = bench.tmp / "ctr-logs"

    def ctr(self, *args):
        return self.b.ctr(*args)

    def task_list(self):
        out = run(self.ctr("task", "ls")).stdout.splitlines()[1:]
        return {f[0]: (int(f[1]), f[2]) for f in (l.split() for l in out) if len(f) >= 3}

    def up(self, op):
        b = self.b
        self.logs.mkdir(exist_ok=True)
        op.step("ip netns add", lambda: run(["ip", "netns", "add", self.name]))
        op.step("cni ADD loopback", lambda: cni_exec(
            b.cni_dir, "loopback", "ADD", self.name, self.netns_path, "lo",
            {"cniVersion": "1.0.0", "name": "cni-loopback", "type": "loopback"}))
        self.result = cni_chain(b.cni_dir, CTR_CONFLIST, "ADD", self.name, self.netns_path, "eth0",
                                self.ports, None, op=op)
        op.step("ctr run -d pause", lambda: run(self.ctr(
            "run", "-d", "--log-uri", f"file://{self.logs}/{self.pause}.log",
            "--with-ns", f"network:{self.netns_path}", PAUSE_IMAGE, self.pause)))
        tasks = op.step("ctr task ls", self.task_list)
        pid = tasks[self.pause][0]
        op.step("ctr run -d echo", lambda: run(self.ctr(
            "run", "-d", "--log-uri", f"file://{self.logs}/{self.echo}.log",
            "--with-ns", f"network:{self.netns_path}",
            "--with-ns", f"ipc:/proc/{pid}/ns/ipc", "--with-ns", f"uts:/proc/{pid}/ns/uts",
            ECHO_IMAGE, self.echo)))

    def stop(self, op, task):
        op.step(f"ctr task kill {task.rsplit('-', 1)[1]}", lambda: run(self.ctr("task", "kill", "-s", "SIGTERM", task)))

        def wait_stopped():
            deadline = time.time() + 30
            while self.task_list().get(task, (0, "STOPPED"))[1] != "STOPPED":
                if time.time() > deadline:
                    raise BenchError(f"ctr task {task} did not stop within 30s of SIGTERM")
                checkpoint()
                time.sleep(0.01)

        op.step(f"wait (ctr task ls) {task.rsplit('-', 1)[1]}", wait_stopped)
        op.step(f"ctr task rm {task.rsplit('-', 1)[1]}", lambda: run(self.ctr("task", "rm", task)))

    def down(self, op):
        b = self.b
        self.stop(op, self.echo)
        self.stop(op, self.pause)
        op.step("ctr container rm (both)", lambda: run(self.ctr("container", "rm", self.echo, self.pause)))
        # Same as podctl: DEL while the netns still exists (bridge's ipMasq rule needs the address).
        cni_chain(b.cni_dir, CTR_CONFLIST, "DEL", self.name, self.netns_path, "eth0", self.ports,
                  self.result, op=op)
        op.step("ip netns del", lambda: run(["ip", "netns", "del", self.name]))

    def force_cleanup(self):
        for task in (self.echo, self.pause):
            run(self.ctr("task", "kill", "-s", "SIGKILL", task), check=False)
        for task in (self.echo, self.pause):
            for _ in range(100):
                p = run(self.ctr("task", "rm", "-f", task), check=False)
                if p.returncode == 0 or "not found" in p.stderr:
                    break
                time.sleep(0.05)
        run(self.ctr("container", "rm", self.echo, self.pause), check=False)
        netns = self.netns_path if Path(self.netns_path).exists() else ""
        cni_chain(self.b.cni_dir, CTR_CONFLIST, "DEL", self.name, netns, "eth0", self.ports, self.result,
                  check=False)
        if netns:
            run(["ip", "netns", "del", self.name], check=False)


# ---------------------------------------------------------------------------------------------
# containerd events and the perf trace


EVENT_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))? ([+-])(\d\d)(\d\d) \S+ (\S+) (\S+) (.*)$"
)


def parse_events(path):
    events = []
    if path is None or not Path(path).exists():
        return events
    for line in Path(path).read_text().splitlines():
        m = EVENT_RE.match(line)
        if not m:
            continue
        y, mo, d, h, mi, s, frac, sign, oh, om, ns, topic, payload = m.groups()
        secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))
        offset = (int(oh) * 3600 + int(om) * 60) * (1 if sign == "+" else -1)
        t = (secs - offset) * 10**9 + int((frac or "0").ljust(9, "0")[:9])
        try:
            body = json.loads(payload)
        except ValueError:
            body = {}
        cid = body.get("container_id") or body.get("id") or body.get("key") or ""
        events.append((t, ns, topic, cid))
    return events


def attach_events(ops, events, namespace):
    for op in ops:
        if op.wall1 is None:
            continue
        for t, ns, topic, cid in events:
            if ns == namespace and op.wall0 <= t <= op.wall1:
                role = "echo" if cid.endswith("-echo") else "pause"
                op.events.append({"t_ms": round((t - op.wall0) / 1e6, 3), "topic": topic, "role": role})


def merge_trace(traces, events, namespace):
    """Each traced create's rows plus containerd's events during it, then per row the median
    offset, duration and exec count over the traced runs."""
    series = {}
    for start, rows in traces:
        if start is None or not rows:
            continue
        rows = list(rows)
        end = start + int(max(r["t"] for r in rows) * 1e6)
        for t, ns, topic, cid in events:
            if ns == namespace and start <= t <= end:
                role = "echo" if cid.endswith("-echo") else "pause"
                rows.append({"t": (t - start) / 1e6, "what": f"containerd event {topic} {role}"})
        seen = {}
        for r in sorted(rows, key=lambda r: r["t"]):
            seen[r["what"]] = seen.get(r["what"], 0) + 1
            key = r["what"] if seen[r["what"]] == 1 else f"{r['what']} #{seen[r['what']]}"
            series.setdefault(key, []).append(r)
    merged = []
    for what, rs in series.items():
        row = {"ms": statistics.median(r["t"] for r in rs), "what": what, "seen_in_runs": len(rs)}
        for k in ("dur", "execs"):
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                row[k] = statistics.median(vals)
        merged.append(row)
    return sorted(merged, key=lambda r: r["ms"])


PERF_RE = re.compile(r"^\s*(.*?)\s+(\d+)/(\d+)\s+(\d+\.\d+):\s+(\S+):\s*(.*)$")


def summarize_perf(script, cni_dir, wall_minus_mono):
    """podctl's process tree from `perf script`: when it made the netns, when each CNI plugin ran
    and how many programs (iptables...) each plugin ran. (epoch ns of podctl's execve, rows)."""
    start = root = None
    tids, parent, tgid_of, plugin_rows, rows = set(), {}, {}, {}, []
    for line in script.splitlines():
        m = PERF_RE.match(line)
        if not m:
            continue
        _comm, pid, tid, t, event, trace = m.groups()
        pid, tid, t = int(pid), int(tid), float(t) * 1000
        kv = dict(re.findall(r"(\w+)=(\S+)", trace))
        if root is None:
            if event == "sched:sched_process_exec" and kv.get("filename", "").endswith("/podctl"):
                root, start = pid, t
                tids.add(tid)
                tgid_of[tid] = pid
                rows.append({"t": 0.0, "what": "podctl execve"})
            continue
        if tid not in tids:
            continue
        rel = t - start
        tgid_of[tid] = pid
        if event == "sched:sched_process_fork":
            child = int(kv["child_pid"])
            tids.add(child)
            parent[child] = tid
        elif event == "sched:sched_process_exec":
            filename = kv.get("filename", "")
            if filename.startswith(str(cni_dir) + "/"):
                row = {"t": rel, "what": f"CNI plugin {os.path.basename(filename)}", "execs": 0}
                plugin_rows[pid] = row
                rows.append(row)
            else:
                # credit the nearest plugin above it (iptables, ip6tables, ...)
                p = parent.get(tid)
                while p is not None and tgid_of.get(p) not in plugin_rows:
                    p = parent.get(p)
                if p is not None:
                    plugin_rows[tgid_of[p]]["execs"] += 1
        elif event == "syscalls:sys_enter_unshare" and pid == root and "0x40000000" in trace:
            rows.append({"t": rel, "what": "unshare(CLONE_NEWNET): the netns"})
        elif event == "sched:sched_process_exit" and kv.get("group_dead") == "true":
            if pid in plugin_rows and "dur" not in plugin_rows[pid]:
                plugin_rows[pid]["dur"] = rel - plugin_rows[pid]["t"]
            elif pid == root:
                rows.append({"t": rel, "what": "podctl exits"})
    if start is None:
        return None, []
    return int(start * 1e6) + wall_minus_mono, sorted(rows, key=lambda r: r["t"])


# ---------------------------------------------------------------------------------------------
# Report


def stats(values):
    return statistics.median(values), min(values), max(values)


def report(bench, trace_rows):
    ops = [o for o in bench.ops if not o.warmup]
    tools = bench.args.tools
    out = []
    p = out.append
    med = {}
    p("")
    p(f"pod start/delete, {bench.args.runs} runs per tool (after 1 warm-up each), interleaved; probe "
      f"{bench.args.probe} every {bench.args.interval * 1000:g} ms; {os.cpu_count()} CPUs, load average "
      f"{bench.load[0]} at start, {bench.load[1]} at end")
    p("times in ms: median (min-max); start = first command -> first HTTP 200, delete = delete command(s)")
    p("")
    p(f"{'tool':<8}{'start':>26}{'(commands returned)':>26}{'delete':>26}")
    for tool in tools:
        cells = []
        for key, opname in (("total", "start"), ("cmd", "start"), ("total", "delete")):
            vals = [ms(o.total_ns if key == "total" else o.cmd_ns) for o in ops if o.tool == tool and o.op == opname]
            if not vals:
                cells.append("-")
                continue
            m, lo, hi = stats(vals)
            if key == "total":
                med[(tool, opname)] = m
            cells.append(f"{m:.1f} ({lo:.1f}-{hi:.1f})")
        p(f"{tool:<8}" + "".join(f"{c:>26}" for c in cells))
    p("")
    p("ratios (medians)            measured   target   verdict")
    verdicts = []
    for opname in ("start", "delete"):
        for other in ("ctr", "podman"):
            if ("podctl", opname) not in med or (other, opname) not in med:
                continue
            r = med[("podctl", opname)] / med[(other, opname)]
            target = next((t for o, x, t in TARGETS if o == opname and x == other), None)
            if target is None:
                p(f"{opname:<6} podctl/{other:<7}        {r:8.2f}        -   (no target)")
            else:
                ok = r <= target
                verdicts.append(ok)
                p(f"{opname:<6} podctl/{other:<7}        {r:8.2f}   <={target:4.2f}   {'met' if ok else 'NOT met'}")
    p("")
    p("per-step medians (ms):")
    for tool in tools:
        for opname in ("start", "delete"):
            sel = [o for o in ops if o.tool == tool and o.op == opname]
            if not sel:
                continue
            names = []
            for o in sel:
                for n, _ in o.steps:
                    if n not in names:
                        names.append(n)
            parts = []
            for n in names:
                vals = [sum(v for nn, v in o.steps if nn == n) for o in sel]
                parts.append(f"{n} {statistics.median(vals):.1f}")
            if opname == "start":
                lag = statistics.median([ms(o.total_ns - o.cmd_ns) for o in sel])
                parts.append(f"until HTTP 200 {lag:.1f}")
            p(f"  {tool:<7} {opname:<6} " + " | ".join(parts))
    p("")
    p("containerd event timeline, median ms from the first command (pause = sandbox, echo = member):")
    for tool in ("podctl", "ctr"):
        for opname in ("start", "delete"):
            sel = [o for o in ops if o.tool == tool and o.op == opname and o.events]
            if not sel:
                continue
            series = {}
            for o in sel:
                seen = {}
                for e in o.events:
                    label = f"{e['topic']} {e['role']}"
                    seen[label] = seen.get(label, 0) + 1
                    if seen[label] > 1:
                        label += f" #{seen[label]}"
                    series.setdefault(label, []).append(e["t_ms"])
            rows = sorted((statistics.median(v), k) for k, v in series.items())
            rows.append((statistics.median([ms(o.cmd_ns) for o in sel]), "(commands returned)"))
            if opname == "start":
                rows.append((statistics.median([ms(o.total_ns) for o in sel]), "(first HTTP 200)"))
            rows.sort()
            p(f"  {tool} {opname}: " + ", ".join(f"{k} {v:.1f}" for v, k in rows))
    for what, rows in trace_rows.items():
        p("")
        p(f"podctl {what} traced with perf ({bench.args.trace_podctl} extra untimed runs), median ms from "
          "podctl's execve:")
        for r in rows:
            extra = []
            if "dur" in r:
                extra.append(f"runs {r['dur']:.1f} ms")
            if "execs" in r:
                extra.append(f"{r['execs']:g} child programs")
            if r["seen_in_runs"] != bench.args.trace_podctl:
                extra.append(f"in {r['seen_in_runs']} runs")
            p(f"  {r['ms']:8.1f}  {r['what']}" + (f" ({', '.join(extra)})" if extra else ""))
    p("")
    p("podman delete = `podman pod rm -f`: stops each container with its stop signal (SIGTERM, from the")
    p("image) and podman's default stop timeout (stop_timeout, 10 s) before SIGKILL; the echo server and")
    p("the pause process exit on SIGTERM at once, so the timeout never runs out.")
    return "\n".join(out), verdicts


def write_results(bench, trace_rows):
    d = Path(bench.args.results_dir)
    d.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = d / f"pod-start-{stamp}"
    with open(f"{base}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tool", "run", "warmup", "op", "total_ms", "commands_ms", "polls"])
        for o in bench.ops:
            w.writerow([o.tool, o.run, int(o.warmup), o.op, f"{ms(o.total_ns):.3f}", f"{ms(o.cmd_ns):.3f}", o.polls])

    def version(cmd):
        return run(cmd, check=False).stdout.strip().splitlines()[0:1]

    meta = {
        "date_utc": stamp,
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "loadavg_start_end": bench.load,
        "args": {k: v for k, v in vars(bench.args).items()},
        "ports": bench.ports,
        "podctl": str(bench.podctl),
        "podctl_mtime_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bench.podctl.stat().st_mtime)),
        "git_head": run(["git", "-C", REPO, "rev-parse", "HEAD"], check=False).stdout.strip(),
        "git_dirty": bool(run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                              check=False).stdout.strip()),
        "versions": {
            "podctl": version([bench.podctl, "--version"]),
            "containerd": version(["containerd", "--version"]),
            "runc": version(["runc", "--version"]),
            "podman": version(["podman", "--version"]) if "podman" in bench.args.tools else [],
        },
        "ctr_conflist": CTR_CONFLIST,
    }
    with open(f"{base}.json", "w") as f:
        json.dump({"meta": meta, "samples": [o.as_dict() for o in bench.ops],
                   "podctl_trace": trace_rows}, f, indent=1)
    return base


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="timed iterations per tool (default 10)")
    ap.add_argument("--delete-many", type=int, default=0, metavar="N",
                    help="also time `podctl delete` of N pods whose member ignores SIGTERM (grace 2 s)")
    ap.add_argument("--delete-many-rounds", type=int, default=3, help="rounds of --delete-many (default 3)")
    ap.add_argument("--ports", type=lambda s: [int(x) for x in s.split(",")], default=[19380, 19381, 19382],
                    help="host ports for podctl,ctr,podman (default 19380,19381,19382)")
    ap.add_argument("--tools", type=lambda s: [t for t in s.split(",") if t], default=list(TOOLS),
                    help="subset/order of podctl,ctr,podman (default all)")
    ap.add_argument("--probe", choices=("curl", "python"), default="curl",
                    help="readiness probe: spawn curl each poll (default) or an in-process HTTP GET")
    ap.add_argument("--interval", type=float, default=0.01, help="seconds between probes (default 0.01)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds a pod may take to answer (default 30)")
    ap.add_argument("--settle", type=float, default=0.5, help="pause between operations, seconds (default 0.5)")
    ap.add_argument("--podctl", help="podctl binary (default target/release/podctl)")
    ap.add_argument("--build", action="store_true", help="run `cargo build --release` first")
    ap.add_argument("--cni-bin-dir", help="CNI plugin dir (default /opt/cni/bin, else /usr/lib/cni)")
    ap.add_argument("--results-dir", default=str(BENCH_DIR / "results"), help="where raw samples go")
    ap.add_argument("--trace-podctl", type=int, nargs="?", const=3, default=0, metavar="N",
                    help="after the timed runs, N (default 3) untimed podctl creates under perf: "
                         "where its time goes (netns, each CNI plugin, containerd events)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (containerd log, events)")
    a = ap.parse_args(argv)
    if a.runs < 1:
        ap.error("--runs must be >= 1")
    if len(a.ports) != len(TOOLS):
        ap.error("--ports takes three ports: podctl,ctr,podman")
    bad = [t for t in a.tools if t not in TOOLS]
    if bad or not a.tools:
        ap.error(f"--tools: unknown {bad}; choose from {','.join(TOOLS)}")
    return a


def main(argv):
    args = parse_args(argv)
    bench = Bench(args)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    code = 0
    traces = {}
    try:
        bench.check_prereqs()
        if "podman" in args.tools:
            action = ensure_podman_ulimits()
            log(action or f"{CONTAINERS_CONF}: default_ulimits already set")
        bench.before = bench.snapshot()
        bench.load[0] = loadavg()
        if float(bench.load[0].split()[0]) > os.cpu_count():
            log(f"warning: load average {bench.load[0]} on {os.cpu_count()} CPUs: expect noisy figures")
        bench.start_containerd()
        bench.prepare_images()
        bench.start_events()
        checkpoint()
        log(f"tools {','.join(args.tools)}; ports {bench.ports}; {args.runs} runs + 1 warm-up; "
            f"podctl {bench.podctl}")
        for run_no in range(0, args.runs + 1):
            checkpoint()
            bench.iteration(run_no)
        if args.delete_many:
            bench.delete_many(args.delete_many, args.delete_many_rounds)
        bench.load[1] = loadavg()
        if args.trace_podctl and "podctl" in args.tools:
            try:
                traces = bench.trace_podctl(args.trace_podctl)
            except BenchError as e:
                log(f"warning: --trace-podctl failed, reporting without it: {e}")
    except Prereq as e:
        log(f"error: {e}")
        code = EXIT_PREREQ
    except BenchError as e:
        log(f"error: {e}")
        code = EXIT_FAILED
    except Interrupted as e:
        log(f"interrupted ({e}); cleaning up")
        code = 130
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        time.sleep(0.3)  # let `ctr events` write the last events
        events = parse_events(bench.events_file) if bench.events_file else []
        bench.cleanup()
        if bench.before:
            summary, problems = bench.leftovers()
            log(f"leftovers check: {summary}")
            for pr in problems:
                log(f"  LEFT BEHIND: {pr}")
            if problems and code == 0:
                code = EXIT_LEAK
    if code in (0, EXIT_LEAK) and bench.ops:
        attach_events(bench.ops, events, bench.ns)
        trace_rows = {what: merge_trace(t, events, bench.ns) for what, t in traces.items()}
        text, _ = report(bench, trace_rows)
        print(text)
        if getattr(bench, "many", None):
            count, took = bench.many
            print(f"podctl delete of {count} pods ignoring SIGTERM, grace 2 s: median {statistics.median(took):.2f} s "
                  f"(min {min(took):.2f}, max {max(took):.2f}, {len(took)} rounds; target <= 4 s)")
        base = write_results(bench, trace_rows)
        log(f"raw samples: {base}.csv, {base}.json")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
