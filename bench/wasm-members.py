#!/usr/bin/env python3
"""WASM members vs. OCI members in the same podctl pod: start latency, incremental memory, requests/s.

Run as root from anywhere (the repository is found from this file's location):

    cargo build --release && wasm-examples/build.sh      # or pass --build
    bench/wasm-members.py                  # 10 timed iterations (+1 warm-up)
    bench/wasm-members.py --runs 5 --rps-rounds 3

It reuses bench/pod-start.py (imported, not copied): the private containerd, the image import,
the port checks, the cleanup and the leftovers check. Debian 12 packages it needs:

    containerd runc containernetworking-plugins iptables curl wrk   (+ python3)

`wrk` is installed with `apt-get install -y wrk` when it is missing (the only thing the script
installs; --no-install refuses instead, --rps-rounds 0 does without it).

What it does, in one run:
  * pins the binaries: copies target/release/podctl (and its log driver and WASM plugin
    podctl-runtime-wasmtime) and wasm-examples/greeter.wasm into its temp dir (other people rebuild
    them while it runs; the agent and the plugin run as the copies);
  * starts a private containerd (temporary root/state/socket, CRI disabled, its own namespace);
  * warms a private AOT cache (one untimed pod with a greeter), then per iteration creates, probes,
    measures and deletes these pods, one at a time, in an order that rotates every iteration:
      A  {echo}                         B  {echo, echo2 (OCI, PORT=8090)}
      C  {echo, greeter}, EMPTY cache   D  {echo, greeter}, warm cache
      E  {echo, greeter, greeter2}, warm cache
      O<k> / W<k>  {echo + k OCI echo members} / {echo + k greeters} for the memory k's that A-E
                   do not cover (B = O1, D = W1, E = W2)
    For each pod: `podctl create` wall time; the time from create's return to the first HTTP 200
    on each member's host port; `podctl agent status` (start_ms, load_ms, cache_hit of each WASM
    member); `podctl describe` (PIDs, podctl's own "Compiled" event); after a few requests to every
    member and --settle seconds, PSS and RSS (/proc/PID/smaps_rollup) of the pod's shim(s), pause,
    OCI member processes and agent (with the plugin process it starts); then `podctl delete`
    (timed, for information);
  * requests/s: one pod {echo, greeter}, `wrk -t2 -c16 -d5s --latency` against the greeter's and
    the echo server's host ports, alternating, --rps-rounds rounds (after 1 s of warm-up each);
  * prints medians (min-max), paired differences, the ratios against the targets (met / NOT met)
    and writes the raw samples to bench/results/wasm-members-*.{csv,json}.

Everything it creates is removed at the end, also on failure or Ctrl-C; then it checks for
leftovers (netns, iptables rules, CNI IPs, host ports, shims and agents of its containerd).
Exit codes: 0 ok, 1 benchmark failed, 2 prerequisite missing, 3 something was left behind.
"""

import argparse
import csv
import hashlib
import importlib.util
import json
import os
import re
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


def _load_pod_start():
    """bench/pod-start.py as a module (its name has a dash; its main() only runs as a script).
    No bytecode is written next to it."""
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("pod_start", BENCH_DIR / "pod-start.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ps = _load_pod_start()
log, now, ms, run, checkpoint = ps.log, ps.now, ps.ms, ps.run, ps.checkpoint
BenchError, Prereq, Interrupted = ps.BenchError, ps.Prereq, ps.Interrupted
EXIT_FAILED, EXIT_PREREQ, EXIT_LEAK = ps.EXIT_FAILED, ps.EXIT_PREREQ, ps.EXIT_LEAK

GREETER_TEXT = b"Hello from the WASM greeter!"
# Targets: warm WASM member start <= 1/20 of an OCI member's; one more WASM member's memory
# <= 1/10 of one more OCI member's.
START_TARGET = 1 / 20
MEMORY_TARGET = 1 / 10


# ---------------------------------------------------------------------------------------------
# Members and pods


def member_names(kind, k):
    """{echo + k OCI echo members} or {echo + k greeters}."""
    if kind == "oci":
        return ["echo"] + [f"echo{i + 2}" for i in range(k)]
    return ["echo"] + ["greeter" if i == 0 else f"greeter{i + 1}" for i in range(k)]


def container_port(member):
    """echo 8080, echoN 8088+N (echo2 = 8090); greeter 8081, greeterN 8080+N (greeter2 = 8082)."""
    if member == "echo":
        return 8080
    if member == "greeter":
        return 8081
    m = re.fullmatch(r"(echo|greeter)(\d+)", member)
    n = int(m.group(2))
    return 8088 + n if m.group(1) == "echo" else 8080 + n


def is_wasm(member):
    return member.startswith("greeter")


class PodSpec:
    def __init__(self, label, kind, k, cold=False, what=""):
        self.label, self.kind, self.k, self.cold = label, kind, k, cold
        self.members = member_names(kind, k)
        self.what = what

    @property
    def measured_member(self):
        """The member whose start the pod exists to show (the last one added)."""
        return self.members[-1]

    def describe(self):
        return "{" + ", ".join(self.members) + "}" + (" cold cache" if self.cold else "")


def pod_plan(mem_k):
    start = [
        PodSpec("A", "oci", 0, what="baseline"),
        PodSpec("B", "oci", 1, what="+1 OCI member"),
        PodSpec("C", "wasm", 1, cold=True, what="+1 WASM member, agent, cold compile"),
        PodSpec("D", "wasm", 1, what="+1 WASM member, agent, warm cache"),
        PodSpec("E", "wasm", 2, what="+2 WASM members, warm cache"),
    ]
    have = {("oci", 0): "A", ("oci", 1): "B", ("wasm", 1): "D", ("wasm", 2): "E"}
    extra = []
    for k in mem_k:
        for kind, prefix in (("oci", "O"), ("wasm", "W")):
            if (kind, k) not in have:
                extra.append(PodSpec(f"{prefix}{k}", kind, k, what=f"memory, k={k}"))
                have[(kind, k)] = f"{prefix}{k}"
    return start + extra, have


# ---------------------------------------------------------------------------------------------
# HTTP, processes, memory


def http_get(port, path="/", timeout=2.0):
    """(status, body) of a GET to 127.0.0.1:port, Connection: close; (None, b"") on failure."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while len(data) < 1 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    try:
        return int(parts[1]), body
    except (IndexError, ValueError):
        return None, body


def read_argv(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def exe_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def all_pids():
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def children_map():
    kids = {}
    for pid in all_pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(pid)
    return kids


def tree(pid, kids):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


MEM_UNITS = ("pss_kb", "pss_anon_kb", "uss_kb", "rss_kb")
UNIT_NAMES = {"pss_kb": "PSS", "pss_anon_kb": "PSS anon", "uss_kb": "USS", "rss_kb": "RSS"}


def smaps_rollup(pid):
    """{pss_kb, pss_anon_kb, uss_kb (Private_Clean + Private_Dirty), rss_kb} of one process, or None
    if it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    v = {k: int(n) for k, n in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}
    return {"pss_kb": v.get("Pss", 0), "pss_anon_kb": v.get("Pss_Anon", 0),
            "uss_kb": v.get("Private_Clean", 0) + v.get("Private_Dirty", 0), "rss_kb": v.get("Rss", 0)}


def mem_of(pids):
    res = dict.fromkeys(MEM_UNITS, 0)
    for p in pids:
        v = smaps_rollup(p)
        if v:
            for k in MEM_UNITS:
                res[k] += v[k]
    res["pids"] = sorted(pids)
    return res


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# wrk


def parse_duration_ms(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def parse_wrk(out):
    res = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    res["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = parse_duration_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return res


# ---------------------------------------------------------------------------------------------
# The benchmark environment: pod-start's Bench plus members, agents, caches


class WasmBench(ps.Bench):
    def __init__(self, args):
        # pod-start's Bench reads these; podman and ctr are not used here.
        args.tools = ["podctl"]
        args.trace_podctl = 0
        args.probe = "python"
        args.ports = []
        super().__init__(args)
        self.tag = f"wm{self.pid}"
        self.plan, self.by_kind = pod_plan(args.mem_k)
        kmax = max([2] + args.mem_k)
        names = member_names("oci", kmax) + member_names("wasm", kmax)[1:]
        self.host_ports = {m: args.port_base + i for i, m in enumerate(names)}
        self.ports = dict(self.host_ports)  # pod-start's leftovers check looks at self.ports
        self.samples = []  # one dict per pod run
        self.rps = []
        self.greeter = None
        self.warm_cache = None
        self.pod_members = {}  # pod name -> members, for the fallback cleanup
        self.installed = []
        self.podctl_src = None
        self.shim_dir = None
        self.path_before = None
        self.agents_left = 0

    # -- prerequisites -------------------------------------------------------------------------

    def check_prereqs(self):
        a = self.args
        if a.build and os.geteuid() == 0:
            log("building the WASM examples: wasm-examples/build.sh")
            p = subprocess.run(["bash", str(REPO / "wasm-examples/build.sh")], env=ps.CLEAN_ENV)
            if p.returncode != 0:
                raise Prereq("wasm-examples/build.sh failed")
        ports, self.ports = self.ports, {}
        try:
            super().check_prereqs()  # root, containerd/runc/CNI, podctl (and --build)
        finally:
            self.ports = ports
        problems = []
        self.greeter_src = Path(a.greeter) if a.greeter else REPO / "wasm-examples/greeter.wasm"
        if not self.greeter_src.is_file():
            problems.append(f"{self.greeter_src} does not exist: run wasm-examples/build.sh (or pass --build / --greeter)")
        for member, port in self.host_ports.items():
            why = ps.port_problem(port)
            if why:
                problems.append(f"{why} (needed for {member}; pick another range with --port-base)")
        if a.rps_rounds and shutil.which("wrk", path=ps.CLEAN_ENV["PATH"]) is None:
            if a.no_install:
                problems.append("`wrk` is not installed (apt-get install wrk), or pass --rps-rounds 0")
            else:
                log("wrk is missing: installing it with `apt-get install -y wrk`")
                p = run(["apt-get", "install", "-y", "wrk"], check=False, timeout=600)
                if p.returncode != 0:
                    run(["apt-get", "update"], check=False, timeout=600)
                    p = run(["apt-get", "install", "-y", "wrk"], check=False, timeout=600)
                if p.returncode != 0 or shutil.which("wrk", path=ps.CLEAN_ENV["PATH"]) is None:
                    problems.append("`apt-get install -y wrk` failed:\n" + (p.stdout + p.stderr)[-2000:])
                else:
                    self.installed.append("wrk")
        if problems:
            raise Prereq("\n  ".join(["prerequisites missing:"] + problems))

    def pin_binaries(self):
        """Copies podctl and greeter.wasm into the temp dir: others rebuild them concurrently, and a
        private podctl binary shares no pages with anybody else's podctl (fair PSS)."""
        self.podctl_src = self.podctl
        pinned = self.tmp / "podctl"
        shutil.copy2(self.podctl, pinned)
        # The members' log driver and the agents' monitor, which podctl finds next to itself.
        for helper in ("podctl-log-driver", "podctl-agent-monitor", "podctl-agent"):
            path = Path(self.podctl).with_name(helper)
            if path.exists():
                shutil.copy2(path, self.tmp / path.name)
        # The WASM plugin the agent starts per pod; --plugin-dir points at this copy.
        plugin = Path(self.podctl).with_name("podctl-runtime-wasmtime")
        if not plugin.exists():
            raise Prereq(f"{plugin} is missing: `cargo build --release` builds it with podctl")
        shutil.copy2(plugin, self.tmp / plugin.name)
        self.podctl = pinned
        self.greeter = self.tmp / "greeter.wasm"
        shutil.copy2(self.greeter_src, self.greeter)
        self.warm_cache = self.tmp / "wasm-cache-warm"
        self.podctl_sha = sha256_file(pinned)
        self.greeter_sha = sha256_file(self.greeter)
        log(f"pinned {self.podctl_src} (sha256 {self.podctl_sha[:12]}) and {self.greeter_src} "
            f"(sha256 {self.greeter_sha[:12]}) into {self.tmp}")

    def podctl_cmd(self, *args, cache=None):
        cmd = super().podctl_cmd(*args)
        # global flags go before the subcommand: after --cni-bin-dir DIR
        i = cmd.index("--cni-bin-dir") + 2
        return (cmd[:i] + ["--wasm-cache-dir", str(cache or self.warm_cache or self.tmp / "wasm-cache"),
                           "--plugin-dir", str(self.tmp)] + cmd[i:])

    def start_containerd(self):
        """pod-start's private containerd; unless --system-shim, with a private copy of
        containerd-shim-runc-v2 first on its PATH: the shims of other containerds on this host
        share the system binary's pages and would make our shim's PSS swing by megabytes."""
        if not self.args.system_shim:
            src = shutil.which("containerd-shim-runc-v2", path=ps.CLEAN_ENV["PATH"])
            self.shim_dir = Path(tempfile.mkdtemp(prefix="podctl-bench-shim.", dir="/tmp"))
            shutil.copy2(src, self.shim_dir / "containerd-shim-runc-v2")
            self.path_before = ps.CLEAN_ENV["PATH"]
            ps.CLEAN_ENV["PATH"] = f"{self.shim_dir}:{self.path_before}"
        super().start_containerd()

    def check_shim_binary(self, sandbox_id):
        """The first pod's shim must be our copy (containerd finds shims on its PATH)."""
        if self.shim_dir is None or getattr(self, "shim_checked", False):
            return
        shims, _ = self.shims_and_agents(sandbox_id)
        exe = {exe_of(p) for p in shims}
        want = str(self.shim_dir / "containerd-shim-runc-v2")
        if exe != {want}:
            raise BenchError(f"the pod's shim runs {exe or 'nothing'}, not the private copy {want}")
        self.shim_checked = True

    def agents_of(self, pod_name):
        res = []
        for pid in self.our_agents():
            args = [x.decode(errors="replace") for x in read_argv(pid)]
            if os.path.basename(args[args.index("--pod-dir") + 1]).startswith(pod_name + "-"):
                res.append(pid)
        return res

    def reap_agents(self, pod_name):
        """After `podctl delete`: an agent of the pod still running is a podctl bug; it would share
        pages with (and take CPU from) the pods measured next. Waits 1 s, then SIGKILLs it by PID."""
        deadline = time.time() + 1
        left = self.agents_of(pod_name)
        while left and time.time() < deadline:
            time.sleep(0.05)
            left = self.agents_of(pod_name)
        for pid in left:
            if not self.agents_left:
                log(f"warning: the agent of {pod_name} (pid {pid}) still runs after `podctl delete`; "
                    "killing leftover agents after each delete (counted in the report)")
            self.agents_left += 1
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(left)

    # -- one pod -------------------------------------------------------------------------------

    def manifest(self, name, spec):
        lines = ["apiVersion: v1", "kind: Pod", "metadata:", f"  name: {name}", "spec:", "  containers:"]
        for m in spec.members:
            image = str(self.greeter) if is_wasm(m) else ps.ECHO_IMAGE
            lines += [f"  - name: {m}", f"    image: {image}"]
            if not is_wasm(m) and m != "echo":
                lines += ["    env:", "    - name: PORT", f'      value: "{container_port(m)}"']
            lines += ["    ports:", f"    - containerPort: {container_port(m)}",
                      f"      hostPort: {self.host_ports[m]}"]
        path = self.tmp / f"{name}.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def wait_ports(self, ports, t_from):
        """First HTTP 200 on each host port: {member: ms after t_from}."""
        pending = dict(ports)
        first = {}
        deadline = now() + int(self.args.timeout * 1e9)
        polls = 0
        while pending:
            for member, port in list(pending.items()):
                polls += 1
                if ps.probe_python(port):
                    first[member] = ms(now() - t_from)
                    del pending[member]
            if not pending:
                break
            if now() > deadline:
                raise BenchError(f"no HTTP 200 within {self.args.timeout}s on {pending}")
            checkpoint()
            time.sleep(self.args.interval)
        return first, polls

    def describe(self, name):
        text = run(self.podctl_cmd("describe", "pod", name)).stdout
        info = {"members": {}, "compiled": {}}
        m = re.search(r"^Sandbox:\s+(\S+) \(pause pid (\d+)\)", text, re.M)
        if not m:
            raise BenchError(f"podctl describe pod {name}: no Sandbox line:\n{text}")
        info["sandbox_id"], info["pause_pid"] = m.group(1), int(m.group(2))
        current = None
        in_containers = False
        for line in text.splitlines():
            if line.startswith("Containers:"):
                in_containers = True
                continue
            if in_containers and re.match(r"^\S", line):
                in_containers = False
            if in_containers:
                mm = re.match(r"^  (\S+):$", line)
                if mm:
                    current = mm.group(1)
                    info["members"][current] = {}
                    continue
                mm = re.match(r"^\s+(Agent PID|PID):\s+(\d+)", line)
                if mm and current:
                    info["members"][current]["agent_pid" if mm.group(1) == "Agent PID" else "pid"] = int(mm.group(2))
            mm = re.search(r"Compiled\s+\S+\s+podctl/(\S+)\s+\S+ sha256:\S+ (compiled|loaded from the AOT cache) in (\d+) ms", line)
            if mm:
                info["compiled"][mm.group(1)] = {"how": mm.group(2), "ms": int(mm.group(3))}
        return info

    def agent_status(self, name):
        p = run(self.podctl_cmd("agent", "status", name), check=False)
        if p.returncode != 0:
            return None
        try:
            return json.loads(p.stdout)
        except ValueError:
            return None

    def shims_and_agents(self, sandbox_id):
        shims, agents = [], []
        for pid in all_pids():
            argv = read_argv(pid)
            if not argv or not argv[0]:
                continue
            base = os.path.basename(argv[0].decode(errors="replace"))
            args = [a.decode(errors="replace") for a in argv]
            if base.startswith("containerd-shim") and str(self.sock) in args:
                sid = args[args.index("-id") + 1] if "-id" in args[:-1] else ""
                if sid == sandbox_id or sid.startswith(sandbox_id + "-"):
                    shims.append(pid)
            # `agent run` only: its monitor (`agent monitor`, a parent with no members) would
            # count the agent a second time through its process tree.
            elif "agent" in args[:-1] and args[args.index("agent") + 1] == "run" and "--pod-dir" in args[:-1]:
                pod_dir = args[args.index("--pod-dir") + 1]
                if pod_dir.startswith(str(self.tmp) + "/") and os.path.basename(pod_dir) == sandbox_id:
                    agents.append(pid)
        return shims, agents

    def memory(self, spec, info):
        """PSS/RSS of the pod's processes, by part; the shim's children (pause, members) are
        counted in their own parts, not in the shim's."""
        kids = children_map()
        shims, agents = self.shims_and_agents(info["sandbox_id"])
        oci_pids = []
        for m in spec.members:
            pid = info["members"].get(m, {}).get("pid")
            if not is_wasm(m):
                if pid is None:
                    raise BenchError(f"podctl describe shows no PID for OCI member {m}")
                oci_pids += tree(pid, kids)
        wasm_agent_pids = {v["agent_pid"] for v in info["members"].values() if "agent_pid" in v}
        if any(p not in agents for p in wasm_agent_pids):
            agents = sorted(set(agents) | wasm_agent_pids)
        agent_pids = [p for a in agents for p in tree(a, kids)]
        # containerd's binary log driver (`podctl log-driver`, one per running OCI member): a
        # child of the shim, and part of what an OCI member costs.
        drivers = [p for sh in shims for p in kids.get(sh, []) if b"log-driver" in read_argv(p)]
        parts = {
            "shim": mem_of(shims),
            "log_drivers": mem_of(drivers),
            "pause": mem_of(tree(info["pause_pid"], kids)),
            "oci_members": mem_of(oci_pids),
            "agent": mem_of(agent_pids),
        }
        parts["n_shims"] = len(shims)
        parts["n_agents"] = len(agents)
        # The totals the targets use: OCI = member processes + their log drivers + the pod's shim;
        # WASM = the agent.
        if spec.kind == "oci":
            parts["total"] = {k: parts["shim"][k] + parts["log_drivers"][k] + parts["oci_members"][k]
                              for k in MEM_UNITS}
        else:
            parts["total"] = {k: parts["agent"][k] for k in MEM_UNITS}
        parts["all"] = {k: sum(parts[p][k] for p in ("shim", "log_drivers", "pause", "oci_members", "agent"))
                        for k in MEM_UNITS}
        return parts

    def touch_members(self, spec):
        """A few requests to every member (checks who answers), so that memory is measured on
        servers that have served, not on never-touched ones."""
        for m in spec.members:
            port = self.host_ports[m]
            for i in range(self.args.touch):
                status, body = http_get(port, f"/bench/{i}")
                if status != 200:
                    raise BenchError(f"{m} on 127.0.0.1:{port} answered {status} to request {i}")
                if i == 0 and is_wasm(m) and GREETER_TEXT not in body:
                    raise BenchError(f"{m} on 127.0.0.1:{port} is not the greeter: {body[:200]!r}")
                if i == 0 and not is_wasm(m) and GREETER_TEXT in body:
                    raise BenchError(f"{m} on 127.0.0.1:{port} answered like the greeter")

    def pod_run(self, spec, run_no, measure=True):
        a = self.args
        suffix = "w" if run_no == 0 else str(run_no)
        name = f"{self.tag}-{spec.label.lower()}-{suffix}"
        cache = self.tmp / f"wasm-cache-cold-{suffix}" if spec.cold else self.warm_cache
        if spec.cold and cache.exists():
            raise BenchError(f"{cache} exists: the cold pod needs an empty cache")
        manifest = self.manifest(name, spec)
        sample = {"label": spec.label, "run": run_no, "warmup": run_no == 0, "pod": name,
                  "members": spec.members, "cold": spec.cold}
        self.pod_members[name] = spec.members
        self.podctl_pods.append(name)
        wall0 = time.time_ns()
        t0 = now()
        out = run(self.podctl_cmd("create", "-f", manifest, cache=cache)).stdout
        t1 = now()
        if f"pod/{name} created" not in out:
            raise BenchError(f"podctl create printed {out!r}, expected 'pod/{name} created'")
        sample["create_ms"] = ms(t1 - t0)
        first, polls = self.wait_ports({m: self.host_ports[m] for m in spec.members}, t1)
        sample["first_200_after_create_ms"] = first
        sample["polls"] = polls
        sample["wall0_ns"] = wall0
        checkpoint()
        if measure:
            status = self.agent_status(name)
            sample["agent"] = status
            info = self.describe(name)
            sample["describe"] = info
            self.check_shim_binary(info["sandbox_id"])
            if status:
                sample["agent_ready_after_create_start_ms"] = round(status["started_at"] * 1e3 - wall0 / 1e6, 3)
            self.touch_members(spec)
            time.sleep(a.settle)
            sample["memory"] = self.memory(spec, info)
        checkpoint()
        t2 = now()
        run(self.podctl_cmd("delete", name, cache=cache))
        sample["delete_ms"] = ms(now() - t2)
        sample["wall1_ns"] = time.time_ns()
        self.podctl_pods.remove(name)
        sample["agents_left_after_delete"] = self.reap_agents(name)
        for m in spec.members:
            self.check_port_released(m, self.host_ports[m])
        if spec.cold:
            shutil.rmtree(cache, ignore_errors=True)
        time.sleep(a.settle)
        return sample

    # -- the phases ----------------------------------------------------------------------------

    def warm_up_cache(self):
        spec = PodSpec("warm", "wasm", 1)
        s = self.pod_run(spec, 0, measure=False)
        files = list(self.warm_cache.glob("*.*cwasm")) if self.warm_cache.is_dir() else []
        if not files:
            raise BenchError(f"the warm-up pod left no compiled module in {self.warm_cache}")
        log(f"  AOT cache warmed: create {s['create_ms']:.1f} ms, {len(files)} file(s) in {self.warm_cache}")

    def iteration(self, run_no):
        order = list(self.plan)
        k = run_no % len(order)
        order = order[k:] + order[:k]
        parts = []
        for spec in order:
            checkpoint()
            s = self.pod_run(spec, run_no)
            self.samples.append(s)
            extra = ""
            member = spec.measured_member
            if s.get("agent"):
                st = {x["name"]: x for x in s["agent"]["members"]}
                if member in st:
                    extra = f" start_ms {st[member]['start_ms']:.1f}"
            parts.append(f"{spec.label} {s['create_ms']:.0f}+{s['first_200_after_create_ms'][member]:.0f}{extra}")
        label = "warm-up" if run_no == 0 else f"run {run_no}"
        log(f"  {label:>8}: " + " | ".join(parts))

    def rps_phase(self):
        a = self.args
        spec = PodSpec("R", "wasm", 1)
        name = f"{self.tag}-r"
        manifest = self.manifest(name, spec)
        self.pod_members[name] = spec.members
        self.podctl_pods.append(name)
        run(self.podctl_cmd("create", "-f", manifest))
        t1 = now()
        self.wait_ports({m: self.host_ports[m] for m in spec.members}, t1)
        self.touch_members(spec)
        info = self.describe(name)
        targets = [("greeter", self.host_ports["greeter"]), ("echo", self.host_ports["echo"])]
        mem_before = self.memory(spec, info)

        def wrk(port, duration):
            cmd = ["wrk", f"-t{a.wrk_threads}", f"-c{a.wrk_connections}", f"-d{duration}s", "--latency",
                   f"http://127.0.0.1:{port}/"]
            p = run(cmd, timeout=duration + 60)
            return parse_wrk(p.stdout), p.stdout

        for _, port in targets:
            wrk(port, 1)  # warm-up, discarded
        for r in range(1, a.rps_rounds + 1):
            order = targets if r % 2 else list(reversed(targets))
            for member, port in order:
                checkpoint()
                res, out = wrk(port, a.wrk_duration)
                if res["rps"] is None:
                    raise BenchError(f"wrk printed no Requests/sec:\n{out}")
                res.update({"round": r, "member": member, "load": ps.loadavg(), "raw": out})
                self.rps.append(res)
                log(f"  rps round {r} {member:<8} {res['rps']:10.0f} req/s  p50 {res['p50_ms']} ms  "
                    f"non-2xx {res['non_2xx']} socket errors {res['socket_errors']}")
                time.sleep(a.settle)
        mem_after = self.memory(spec, info)
        self.rps_memory = {"before": mem_before, "after": mem_after}
        run(self.podctl_cmd("delete", name))
        self.podctl_pods.remove(name)
        self.reap_agents(name)
        for m in spec.members:
            self.check_port_released(m, self.host_ports[m])

    # -- cleanup additions ---------------------------------------------------------------------

    def sweep_netns(self):
        """Namespaces of our pods still pinned (podctl failed half-way): CNI DEL, then unpin."""
        conflist = ps.podctl_default_conflist()
        for nsname in ps.netns_list():
            if not nsname.startswith(f"podctl-{self.tag}-"):
                continue
            sandbox = nsname[len("podctl-"):]
            pod = sandbox.rsplit("-", 1)[0]
            members = self.pod_members.get(pod, list(self.host_ports))
            mappings = [{"hostPort": self.host_ports[m], "containerPort": container_port(m), "protocol": "tcp"}
                        for m in members]
            if conflist:
                ps.cni_chain(self.cni_dir, conflist, "DEL", sandbox, f"/run/netns/{nsname}", "eth0",
                             mappings, None, check=False)
            run(["ip", "netns", "del", nsname], check=False)

    def our_agents(self):
        if self.tmp is None:
            return []
        res = []
        for pid in all_pids():
            args = [x.decode(errors="replace") for x in read_argv(pid)]
            if "agent" in args and "--pod-dir" in args[:-1] and \
                    args[args.index("--pod-dir") + 1].startswith(str(self.tmp) + "/"):
                res.append(pid)
        return res

    def sweep_agents(self):
        """Agents podctl could not stop (their pod dir is in our temp dir): SIGKILL by PID."""
        for pid in self.our_agents():
            log(f"cleanup: killing leftover agent pid {pid}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def sweep_containerd(self):
        super().sweep_containerd()
        self.sweep_agents()

    def cleanup(self):
        super().cleanup()
        self.sweep_agents()
        if self.path_before is not None:
            ps.CLEAN_ENV["PATH"] = self.path_before
        if self.shim_dir is not None:
            busy = [p for p in all_pids() if exe_of(p).startswith(str(self.shim_dir) + "/")]
            if busy:
                log(f"cleanup: {self.shim_dir} still in use by {busy}; not removed")
            else:
                shutil.rmtree(self.shim_dir, ignore_errors=True)

    def leftovers(self):
        summary, problems = super().leftovers()
        # pod-start counts every iptables line added meanwhile; other people's pods come and go on
        # this host, so keep only ours: lines naming one of our pods, and the chains they use.
        after = ps.iptables_lines()
        added = sorted(set(after) - set(self.before["iptables"]))
        ours = [l for l in added if f'\\"{self.tag}-' in l]
        chains = {w for l in ours for w in l.split() if w.startswith("CNI-")}
        ours += [l for l in added if l.startswith(":") and l[1:].split()[0] in chains]
        foreign = sorted({m for l in added if l not in ours for m in re.findall(r'id: \\"([^\\]+)\\"', l)})
        problems = [pr for pr in problems if not pr.startswith("iptables lines added")]
        if ours:
            problems.append("iptables lines added:\n      " + "\n      ".join(sorted(set(ours))[:20]))
        if foreign:
            summary += f" (iptables lines of pods not ours came and went meanwhile: {', '.join(foreign[:5])})"
        agents = self.our_agents()
        if agents:
            problems.append(f"agents still running: {agents}")
        shims = [p for p in all_pids() if self.sock is not None and str(self.sock).encode() in read_argv(p)
                 and os.path.basename(read_argv(p)[0]).startswith(b"containerd-shim")]
        if shims:
            problems.append(f"shims still running: {shims}")
        return summary + f", agents {len(agents)}, shims {len(shims)}", problems


# ---------------------------------------------------------------------------------------------
# Report


def attach_events(bench):
    """containerd's events (`ctr events`) within each pod's create..delete, by member."""
    events = getattr(bench, "events", [])
    for s in bench.samples:
        sid = (s.get("describe") or {}).get("sandbox_id")
        if not sid or "wall1_ns" not in s:
            continue
        s["events"] = []
        for t, ns, topic, cid in events:
            if ns != bench.ns or not (s["wall0_ns"] <= t <= s["wall1_ns"]):
                continue
            if cid == sid:
                role = "pause"
            elif cid.startswith(sid + "-"):
                role = cid[len(sid) + 1:]
            else:
                continue
            s["events"].append({"t_ms": round((t - s["wall0_ns"]) / 1e6, 3), "topic": topic, "role": role})


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt(st, unit="", digits=1):
    if st is None:
        return "-"
    m, lo, hi = st
    return f"{m:.{digits}f}{unit} ({lo:.{digits}f}-{hi:.{digits}f})"


def ratio_of(w, o):
    """WASM/OCI ratio and its verdict-relevant reading; None when the OCI figure is not positive."""
    if w is None or o is None or o <= 0:
        return None
    return w / o


def verdict(ratio, target):
    if ratio is None:
        return "n/a"
    if ratio <= 0:
        return "met (WASM figure <= 0: below the noise)"
    return "met" if ratio <= target else "NOT met"


def member_status(sample, member):
    for x in (sample.get("agent") or {}).get("members", []):
        if x["name"] == member:
            return x
    return None


def analyse(bench):
    a = bench.args
    timed = [s for s in bench.samples if not s["warmup"]]
    by = {}
    for s in timed:
        by.setdefault(s["label"], {})[s["run"]] = s
    runs = sorted({s["run"] for s in timed})

    def series(label, fn):
        return [fn(by[label][r]) for r in runs if r in by.get(label, {})]

    def paired(l1, l2, fn):
        return [fn(by[l1][r]) - fn(by[l2][r]) for r in runs if r in by.get(l1, {}) and r in by.get(l2, {})]

    create = lambda s: s["create_ms"]  # noqa: E731
    res = {"create": {}, "first200": {}, "diff": {}, "agent": {}, "compiled": {}, "ratios": [], "memory": {}}
    for spec in bench.plan:
        res["create"][spec.label] = stats(series(spec.label, create))
        res["first200"][spec.label] = {
            m: stats(series(spec.label, lambda s, m=m: s["first_200_after_create_ms"][m])) for m in spec.members}
        res["delete"] = res.get("delete", {})
        res["delete"][spec.label] = stats(series(spec.label, lambda s: s["delete_ms"]))
        res["agent_ready"] = res.get("agent_ready", {})
        res["agent_ready"][spec.label] = stats(series(spec.label, lambda s: s.get("agent_ready_after_create_start_ms")))
    for key, (l1, l2) in {"B-A": ("B", "A"), "C-A": ("C", "A"), "D-A": ("D", "A"), "E-D": ("E", "D"),
                          "C-D": ("C", "D")}.items():
        res["diff"][key] = stats(paired(l1, l2, create))
    for label, member in (("C", "greeter"), ("D", "greeter"), ("E", "greeter"), ("E", "greeter2")):
        sts = [member_status(s, member) for s in series(label, lambda s: s)]
        sts = [x for x in sts if x]
        res["agent"][(label, member)] = {
            "start_ms": stats([x["start_ms"] for x in sts]),
            "load_ms": stats([x["load_ms"] for x in sts]),
            "cache_hits": sum(1 for x in sts if x["cache_hit"]),
            "n": len(sts),
        }
        comp = [s["describe"]["compiled"].get(member) for s in series(label, lambda s: s)]
        comp = [c for c in comp if c]
        res["compiled"][(label, member)] = {"ms": stats([c["ms"] for c in comp]),
                                            "how": sorted({c["how"] for c in comp})}
    # containerd's events during each create, per member: median ms from the start of `podctl create`
    res["events"] = {}
    for spec in bench.plan:
        series_ = {}
        for s in series(spec.label, lambda s: s):
            seen = set()
            for e in s.get("events", []):
                key = f"{e['topic']} {e['role']}"
                if key not in seen:
                    seen.add(key)
                    series_.setdefault(key, []).append(e["t_ms"])
        rows = sorted((statistics.median(v), k) for k, v in series_.items())
        rows.append((res["create"][spec.label][0], "(create returned)") if res["create"][spec.label] else (0, ""))
        res["events"][spec.label] = sorted(rows)
    # The part of create after echo's task started (echo is every pod's first member): what differs
    # between the pods, without the sandbox and CNI phases whose noise every pod shares.
    def tail(s):
        starts = [e["t_ms"] for e in s.get("events", []) if e["topic"] == "/tasks/start" and e["role"] == "echo"]
        return s["create_ms"] - min(starts) if starts else None

    res["tail"] = {spec.label: stats(series(spec.label, tail)) for spec in bench.plan}

    def paired_tail(l1, l2):
        vals = [tail(by[l1][r]) - tail(by[l2][r]) for r in runs if r in by.get(l1, {}) and r in by.get(l2, {})
                and tail(by[l1][r]) is not None and tail(by[l2][r]) is not None]
        return stats(vals)

    res["tail_diff"] = {"B-A": paired_tail("B", "A"), "D-A": paired_tail("D", "A"), "E-D": paired_tail("E", "D")}
    res["agents_left"] = {spec.label: sum(s.get("agents_left_after_delete", 0) for s in series(spec.label, lambda s: s))
                          for spec in bench.plan}
    # OCI-only pods: did they get an agent too (podctl may start one per pod to supervise)?
    res["oci_pod_agents"] = sorted({s["memory"]["n_agents"] for s in timed if "memory" in s and s["label"] in ("A", "B")})

    oci = res["diff"]["B-A"][0] if res["diff"]["B-A"] else None
    defs = [
        ("agent start_ms, greeter in D (warm)", res["agent"][("D", "greeter")]["start_ms"]),
        ("agent start_ms, greeter2 in E (warm, 2nd member)", res["agent"][("E", "greeter2")]["start_ms"]),
        ("create E-D (one more WASM member, warm)", res["diff"]["E-D"]),
        ("create D-A (WASM member + agent start, warm)", res["diff"]["D-A"]),
    ]
    for what, st in defs:
        r = ratio_of(st[0] if st else None, oci)
        res["ratios"].append(("start", what, st[0] if st else None, oci, r, START_TARGET, verdict(r, START_TARGET)))
    tw, to = res["tail_diff"]["E-D"], res["tail_diff"]["B-A"]
    r = ratio_of(tw[0] if tw else None, to[0] if to else None)
    res["ratios"].append(("start", "create tail E-D vs tail B-A (after echo started)", tw[0] if tw else None,
                          to[0] if to else None, r, START_TARGET, verdict(r, START_TARGET)))

    # Memory: increment per member = (total(k2) - total(k1)) / (k2 - k1), paired per run.
    k1, k2 = a.mem_k
    for kind in ("oci", "wasm"):
        l1, l2 = bench.by_kind[(kind, k1)], bench.by_kind[(kind, k2)]
        for part in ("total", "all", "shim", "log_drivers", "oci_members", "agent", "pause"):
            for unit in MEM_UNITS:
                vals = [(by[l2][r]["memory"][part][unit] - by[l1][r]["memory"][part][unit]) / (k2 - k1)
                        for r in runs if r in by.get(l1, {}) and r in by.get(l2, {})]
                res["memory"][(kind, part, unit, "incr")] = stats(vals)
                res["memory"][(kind, part, unit, k1)] = stats(series(l1, lambda s: s["memory"][part][unit]))
                res["memory"][(kind, part, unit, k2)] = stats(series(l2, lambda s: s["memory"][part][unit]))
    # USS is left out here: with a private podctl binary the agent's file pages are all "private", and
    # how many of them it has touched varies by more than a member costs (see the table).
    for unit in ("pss_kb", "pss_anon_kb", "rss_kb"):
        o = res["memory"][("oci", "total", unit, "incr")]
        w = res["memory"][("wasm", "total", unit, "incr")]
        r = ratio_of(w[0] if w else None, o[0] if o else None)
        res["ratios"].append(("memory", f"one more member, {UNIT_NAMES[unit]}", w[0] if w else None,
                              o[0] if o else None, r, MEMORY_TARGET, verdict(r, MEMORY_TARGET)))

    for member in ("greeter", "echo"):
        vals = [x for x in bench.rps if x["member"] == member]
        res[("rps", member)] = stats([x["rps"] for x in vals])
        res[("p50", member)] = stats([x["p50_ms"] for x in vals])
        res[("p99", member)] = stats([x["p99_ms"] for x in vals])
        res[("errors", member)] = sum(x["non_2xx"] + x["socket_errors"] for x in vals)
    g, e = res[("rps", "greeter")], res[("rps", "echo")]
    res["rps_ratio"] = g[0] / e[0] if (g and e) else None
    return res


def report(bench, res):
    a = bench.args
    out = []
    p = out.append
    p("")
    p(f"WASM vs OCI members in one podctl pod: {a.runs} runs (+1 warm-up), pods interleaved, order rotating; "
      f"{os.cpu_count()} CPUs, load average {bench.load[0]} at start, {bench.load[1]} at end")
    p("times in ms: median (min-max); differences are paired (same iteration), then the median")
    p("")
    p("1. member start")
    p(f"{'pod':<4}{'members':<40}{'podctl create':>24}   first HTTP 200 after create returns")
    for spec in bench.plan:
        f200 = res["first200"][spec.label]
        cells = ", ".join(f"{m} {fmt(f200[m])}" for m in spec.members if m == "echo" or m == spec.measured_member
                          or spec.label == "E")
        p(f"{spec.label:<4}{spec.describe():<40}{fmt(res['create'][spec.label]):>24}   {cells}")
    p("")
    d = res["diff"]
    p(f"  B-A  one more OCI member               {fmt(d['B-A'])}")
    p(f"  C-A  one more WASM member + agent, cold {fmt(d['C-A'])}")
    p(f"  D-A  one more WASM member + agent, warm {fmt(d['D-A'])}")
    p(f"  E-D  one more WASM member, warm         {fmt(d['E-D'])}")
    p(f"  C-D  cold compile vs warm cache         {fmt(d['C-D'])}")
    p("")
    p("  agent-reported (podctl agent status), ms:   start_ms (read module -> running)   load_ms   cache hits")
    for (label, member), v in res["agent"].items():
        p(f"    {label} {member:<9} {fmt(v['start_ms'], digits=2):>36} {fmt(v['load_ms'], digits=2):>24}   "
          f"{v['cache_hits']}/{v['n']}")
    p("  podctl's own compile/load at create (describe event \"Compiled\"), ms:")
    for (label, member), v in res["compiled"].items():
        if label in ("C", "D") and member == "greeter" or member == "greeter2":
            p(f"    {label} {member:<9} {fmt(v['ms'], digits=0):>20}  ({', '.join(v['how'])})")
    c = res["agent"][("C", "greeter")]
    if c["n"] and c["cache_hits"] == c["n"]:
        p("  note: in C the agent found the module in the cache every time: `podctl create` compiles it (to refuse")
        p("  what is not WebAssembly before it makes anything) and writes the cache; the agent then loads that. The")
        p("  cold compile is in C's create time (C-D, and podctl's \"Compiled\" event above), not in start_ms.")
    ar = res["agent_ready"]
    p("  agent answering (its started_at), ms after `podctl create` began: "
      + ", ".join(f"{l} {fmt(ar[l])}" for l in ("C", "D", "E") if ar.get(l)))
    if res["oci_pod_agents"] and res["oci_pod_agents"] != [0]:
        p(f"  note: OCI-only pods (A, B) had {res['oci_pod_agents']} agent process(es) too (podctl starts one "
          "per pod); create does not wait for it there")
    p("")
    p("  containerd events during create (median ms from its start; pause = sandbox):")
    for label in ("A", "B", "D", "E"):
        rows = [(t, k) for t, k in res["events"].get(label, []) if k and "/snapshot" not in k]
        p(f"    {label}: " + ", ".join(f"{k} {t:.0f}" for t, k in rows))
    t, td = res["tail"], res["tail_diff"]
    p("  create after echo's /tasks/start until it returns (\"tail\": what differs between the pods, without the")
    p("  sandbox and CNI phases): " + ", ".join(f"{l} {fmt(t[l])}" for l in ("A", "B", "D", "E") if t.get(l)))
    p("    paired: " + ", ".join(f"{k} {fmt(v)}" for k, v in td.items()))
    left = {l: n for l, n in res["agents_left"].items() if n}
    if left:
        p(f"  note: agents still running after `podctl delete` (killed by the bench), per pod over all runs: {left}")
    p("")
    p("2. memory, kB (median (min-max)); totals: OCI = member processes + the pod's shim, WASM = the agent")
    k1, k2 = a.mem_k
    mem = res["memory"]
    for kind, name in (("oci", "OCI echo"), ("wasm", "greeter")):
        for unit in MEM_UNITS:
            u = UNIT_NAMES[unit]
            p(f"  {{echo + k {name}}} {u:<8}: k={k1} {fmt(mem[(kind, 'total', unit, k1)], digits=0)}, "
              f"k={k2} {fmt(mem[(kind, 'total', unit, k2)], digits=0)}, "
              f"per member {fmt(mem[(kind, 'total', unit, 'incr')], digits=0)}")
    parts = []
    for kind in ("oci", "wasm"):
        for unit in ("pss_kb", "pss_anon_kb"):
            s = ", ".join(f"{part} {fmt(mem[(kind, part, unit, 'incr')], digits=0)}"
                          for part in ("shim", "log_drivers", "oci_members", "agent", "pause", "all"))
            parts.append(f"  per-member {UNIT_NAMES[unit]} increment by part, {kind}: {s}")
    out.extend(parts)
    if getattr(bench, "rps_memory", None):
        rm = bench.rps_memory
        p(f"  agent of the rps pod: PSS {rm['before']['agent']['pss_kb']} -> {rm['after']['agent']['pss_kb']} kB, "
          f"RSS {rm['before']['agent']['rss_kb']} -> {rm['after']['agent']['rss_kb']} kB across the wrk rounds; "
          f"echo PSS {rm['before']['oci_members']['pss_kb']} -> {rm['after']['oci_members']['pss_kb']} kB")
    p("")
    if bench.rps:
        p(f"3. requests/s via the host port (wrk -t{a.wrk_threads} -c{a.wrk_connections} -d{a.wrk_duration}s, "
          f"{a.rps_rounds} rounds, alternating)")
        for member, what in (("greeter", "WASM greeter"), ("echo", "OCI echo server")):
            p(f"  {what:<16} {fmt(res[('rps', member)], ' req/s', 0):>32}   p50 {fmt(res[('p50', member)], ' ms', 2)}"
              f"   p99 {fmt(res[('p99', member)], ' ms', 2)}   errors {res[('errors', member)]}")
        if res["rps_ratio"]:
            p(f"  greeter/echo: {res['rps_ratio']:.2f} (no target)")
        p("")
    p("ratios (medians)                                       WASM        OCI    ratio   target   verdict")
    for area, what, w, o, r, t, v in res["ratios"]:
        ws = f"{w:10.2f}" if w is not None else f"{'-':>10}"
        os_ = f"{o:10.2f}" if o is not None else f"{'-':>10}"
        rs = f"{r:8.3f}" if r is not None else f"{'-':>8}"
        p(f"  {area:<7}{what:<47}{ws} {os_} {rs}   <={t:.3f}  {v}")
    p("  (start: OCI = create B-A, one more OCI member; memory: OCI = one more OCI member)")
    p("  fair start comparison: create E-D vs B-A (same command, same clock, one more member of each kind, the")
    p("  per-pod agent start in both baselines); start_ms leaves out podctl's per-member work (module load and check,")
    p("  container record, agent config) and D-A includes the agent's start, a per-pod cost")
    return "\n".join(out)


def jsonable(res):
    out = {}
    for k, v in res.items():
        key = k if isinstance(k, str) else "/".join(map(str, k))
        if isinstance(v, dict):
            v = {kk if isinstance(kk, str) else "/".join(map(str, kk)): vv for kk, vv in v.items()}
        out[key] = v
    return out


def write_results(bench, res):
    d = Path(bench.args.results_dir)
    d.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = d / f"wasm-members-{stamp}"
    with open(f"{base}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "label", "run", "warmup", "member", "create_ms", "first_200_after_create_ms",
                    "delete_ms", "agent_start_ms", "agent_load_ms", "cache_hit", "podctl_compile_ms",
                    "total_pss_kb", "total_rss_kb", "shim_pss_kb", "pause_pss_kb", "oci_members_pss_kb",
                    "agent_pss_kb", "agent_rss_kb", "total_pss_anon_kb", "total_uss_kb",
                    "rps", "p50_ms", "p99_ms", "non_2xx", "socket_errors"])
        for s in bench.samples:
            mem = s.get("memory") or {}
            for m in s["members"]:
                st = member_status(s, m) or {}
                comp = (s.get("describe") or {}).get("compiled", {}).get(m, {})
                w.writerow(["start", s["label"], s["run"], int(s["warmup"]), m, f"{s['create_ms']:.3f}",
                            f"{s['first_200_after_create_ms'][m]:.3f}", f"{s['delete_ms']:.3f}",
                            st.get("start_ms", ""), st.get("load_ms", ""), st.get("cache_hit", ""),
                            comp.get("ms", ""),
                            mem.get("total", {}).get("pss_kb", ""), mem.get("total", {}).get("rss_kb", ""),
                            mem.get("shim", {}).get("pss_kb", ""), mem.get("pause", {}).get("pss_kb", ""),
                            mem.get("oci_members", {}).get("pss_kb", ""), mem.get("agent", {}).get("pss_kb", ""),
                            mem.get("agent", {}).get("rss_kb", ""), mem.get("total", {}).get("pss_anon_kb", ""),
                            mem.get("total", {}).get("uss_kb", ""), "", "", "", "", ""])
        for x in bench.rps:
            w.writerow(["rps", "R", x["round"], 0, x["member"]] + [""] * 16
                       + [x["rps"], x["p50_ms"], x["p99_ms"], x["non_2xx"], x["socket_errors"]])

    def version(cmd):
        return run(cmd, check=False).stdout.strip().splitlines()[0:1]

    meta = {
        "date_utc": stamp,
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "loadavg_start_end": bench.load,
        "args": {k: v for k, v in vars(bench.args).items()},
        "host_ports": bench.host_ports,
        "pods": {s.label: {"members": s.members, "cold": s.cold, "what": s.what} for s in bench.plan},
        "podctl": str(bench.podctl_src),
        "podctl_sha256": getattr(bench, "podctl_sha", None),
        "podctl_mtime_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bench.podctl_src.stat().st_mtime))
        if bench.podctl_src else None,
        "greeter": str(bench.greeter_src),
        "greeter_sha256": getattr(bench, "greeter_sha", None),
        "git_head": run(["git", "-C", REPO, "rev-parse", "HEAD"], check=False).stdout.strip(),
        "git_dirty": bool(run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                              check=False).stdout.strip()),
        "installed": bench.installed,
        "versions": {
            "containerd": version(["containerd", "--version"]),
            "runc": version(["runc", "--version"]),
            "wrk": version(["sh", "-c", "wrk --version 2>&1 | head -1"]),
        },
    }
    samples = []
    for s in bench.samples:
        s = dict(s)
        samples.append(s)
    with open(f"{base}.json", "w") as f:
        json.dump({"meta": meta, "samples": samples, "rps": bench.rps,
                   "rps_memory": getattr(bench, "rps_memory", None), "summary": jsonable(res)},
                  f, indent=1, default=str)
    return base


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="timed iterations (default 10)")
    ap.add_argument("--port-base", type=int, default=19390,
                    help="first host port; members get consecutive ones (default 19390)")
    ap.add_argument("--mem-k", type=lambda s: [int(x) for x in s.split(",")], default=[1, 3],
                    help="the two k of the memory pods {echo + k members} (default 1,3)")
    ap.add_argument("--touch", type=int, default=20,
                    help="requests to every member before memory is read (default 20)")
    ap.add_argument("--rps-rounds", type=int, default=5, help="wrk rounds per server (default 5; 0 = skip)")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-connections", type=int, default=16)
    ap.add_argument("--wrk-duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install wrk when it is missing")
    ap.add_argument("--interval", type=float, default=0.005, help="seconds between probe rounds (default 0.005)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds a pod may take to answer (default 30)")
    ap.add_argument("--settle", type=float, default=0.5, help="pause between steps, seconds (default 0.5)")
    ap.add_argument("--podctl", help="podctl binary (default target/release/podctl)")
    ap.add_argument("--greeter", help="greeter component (default wasm-examples/greeter.wasm)")
    ap.add_argument("--build", action="store_true",
                    help="run wasm-examples/build.sh and `cargo build --release` first")
    ap.add_argument("--cni-bin-dir", help="CNI plugin dir (default /opt/cni/bin, else /usr/lib/cni)")
    ap.add_argument("--results-dir", default=str(BENCH_DIR / "results"), help="where raw samples go")
    ap.add_argument("--system-shim", action="store_true",
                    help="let containerd use the system containerd-shim-runc-v2 (default: a private copy, "
                         "so that the shim's PSS does not depend on other shims on the host)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (containerd log, agent logs)")
    a = ap.parse_args(argv)
    if a.runs < 1:
        ap.error("--runs must be >= 1")
    if len(a.mem_k) != 2 or a.mem_k[0] < 1 or a.mem_k[1] <= a.mem_k[0]:
        ap.error("--mem-k takes two k, 1 <= k1 < k2 (e.g. 1,3)")
    if a.rps_rounds < 0:
        ap.error("--rps-rounds must be >= 0")
    return a


def main(argv):
    args = parse_args(argv)
    bench = WasmBench(args)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, ps.on_signal)

    code = 0
    try:
        bench.check_prereqs()
        bench.before = bench.snapshot()
        bench.load[0] = ps.loadavg()
        if float(bench.load[0].split()[0]) > os.cpu_count():
            log(f"warning: load average {bench.load[0]} on {os.cpu_count()} CPUs: expect noisy figures")
        bench.start_containerd()
        bench.pin_binaries()
        bench.prepare_images()
        bench.start_events()
        checkpoint()
        log(f"pods: " + "; ".join(f"{s.label} {s.describe()}" for s in bench.plan))
        log(f"host ports {bench.host_ports}; {args.runs} runs + 1 warm-up")
        bench.warm_up_cache()
        log("iterations: per pod `create ms + first 200 of its last member ms`, agent start_ms")
        for run_no in range(0, args.runs + 1):
            checkpoint()
            bench.iteration(run_no)
        if args.rps_rounds:
            bench.rps_phase()
        bench.load[1] = ps.loadavg()
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
        bench.events = ps.parse_events(bench.events_file) if bench.events_file else []
        bench.cleanup()
        if bench.before:
            summary, problems = bench.leftovers()
            log(f"leftovers check: {summary}")
            for pr in problems:
                log(f"  LEFT BEHIND: {pr}")
            if problems and code == 0:
                code = EXIT_LEAK
    if code in (0, EXIT_LEAK) and [s for s in bench.samples if not s["warmup"]]:
        attach_events(bench)
        res = analyse(bench)
        print(report(bench, res))
        base = write_results(bench, res)
        log(f"raw samples: {base}.csv, {base}.json")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
