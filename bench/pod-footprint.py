#!/usr/bin/env python3
"""Per-pod memory of podctl's own processes for OCI-only pods (issue 13's lean-agent target).

Run as root:

    cargo build --release          # or pass --build
    bench/pod-footprint.py         # 100 pods of podctl's echo server
    bench/pod-footprint.py --pods 20

It reuses bench/pod-start.py (through wasm-members.py, both imported): a private containerd (temporary root/state/socket, its own
namespace), the image import, and the cleanup with its leftovers sweep. It creates --pods pods of one
OCI member each (podctl's echo server, no host port), waits --settle seconds, and reads PSS/RSS
(/proc/PID/smaps_rollup) of every process podctl started for each pod: the agent's monitor
(`podctl-agent-monitor`, or `podctl agent monitor` without it), the agent (`podctl agent run`) and any plugin process under it. PSS
divides shared pages among the processes that map them, so with many pods the figure is what one
more pod costs. For reference it also prints the pods' shared shim(s) and pause processes.
Prints medians per pod and the target (podctl's own per-pod processes <= 1.0 MB PSS).
Exit codes as pod-start.py: 0 ok, 1 failed, 2 a prerequisite is missing, 3 something was left.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TARGET_KB = 1024


def _load(name, file):
    """A bench script as a module (its name has a dash; its main() only runs as a script)."""
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# wasm-members.py loads pod-start.py (the private containerd, images, cleanup) and reads smaps.
wm = _load("wasm_members", "wasm-members.py")
ps, smaps = wm.ps, wm.smaps_rollup


def processes():
    """pid -> (argv, ppid) of every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out[int(entry.name)] = ([a.decode(errors="replace") for a in argv if a], ppid)
    return out


def median_line(label, values, unit="kB"):
    return f"{label:34} {statistics.median(values):8.0f} {unit}  (min {min(values):.0f}, max {max(values):.0f}, n={len(values)})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds between the last create and the reading")
    ap.add_argument("--podctl", help="podctl binary (default target/release/podctl)")
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--cni-bin-dir", help="CNI plugin dir (default /opt/cni/bin, else /usr/lib/cni)")
    a = ap.parse_args()
    bench_args = argparse.Namespace(
        tools=["podctl"], probe="python", trace_podctl=0, ports=[19380, 19381, 19382], cni_bin_dir=a.cni_bin_dir,
        build=a.build, podctl=a.podctl, keep_tmp=False, runs=0, interval=0.01, timeout=30, settle=0.5,
    )
    b = ps.Bench(bench_args)
    try:
        b.check_prereqs()
        b.before = b.snapshot()
        b.start_containerd()
        b.prepare_images()
        started = time.monotonic()
        for i in range(a.pods):
            name = f"fp{i}"
            manifest = b.tmp / f"{name}.yaml"
            manifest.write_text(
                f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n"
                f"  containers:\n  - name: echo\n    image: {ps.ECHO_IMAGE}\n")
            ps.run(b.podctl_cmd("create", "-f", manifest))
            b.podctl_pods.append(name)
        ps.log(f"{a.pods} pods created in {time.monotonic() - started:.1f} s; settling {a.settle} s")
        time.sleep(a.settle)

        state = str(b.tmp / "podctl-state")
        procs = processes()
        children = {}
        for pid, (_, ppid) in procs.items():
            children.setdefault(ppid, []).append(pid)
        per_pod = {}
        for pid, (argv, _) in procs.items():
            if "--pod-dir" not in argv:
                continue
            pod_dir = argv[argv.index("--pod-dir") + 1]
            if not pod_dir.startswith(state):
                continue
            if argv[0].endswith("podctl-agent-monitor"):
                per_pod.setdefault(pod_dir, {})["monitor"] = pid
            elif "agent" in argv:
                per_pod.setdefault(pod_dir, {})[argv[argv.index("agent") + 1]] = pid
        rows = []
        for pod_dir, roles in per_pod.items():
            agent = roles.get("run")
            plugins = children.get(agent, []) if agent else []
            mem = {role: smaps(pid) for role, pid in roles.items()}
            mem["plugins"] = [smaps(p) for p in plugins]
            rows.append(mem)
        if len(rows) != a.pods:
            raise ps.BenchError(f"found podctl processes of {len(rows)} pods, expected {a.pods}")
        own = [sum(m[r]["pss_kb"] for r in ("monitor", "run") if m.get(r)) + sum(p["pss_kb"] for p in m["plugins"] if p)
               for m in rows]
        shims = [pid for pid, (argv, _) in procs.items() if argv and argv[0].endswith("containerd-shim-runc-v2")
                 and str(b.sock) in " ".join(argv)]
        pauses = [pid for pid, (argv, _) in procs.items() if argv and argv[0] == "/pause"]
        shim_pss = sum((smaps(p) or {"pss_kb": 0})["pss_kb"] for p in shims)
        print(f"\n{a.pods} OCI-only pods (podctl's echo server), PSS per pod after {a.settle} s:")
        print(median_line("agent monitor", [m["monitor"]["pss_kb"] for m in rows if m.get("monitor")]))
        print(median_line("agent", [m["run"]["pss_kb"] for m in rows if m.get("run")]))
        print(median_line("agent, anonymous (Pss_Anon)", [m["run"]["pss_anon_kb"] for m in rows if m.get("run")]))
        print(median_line("plugin processes (count)", [len(m["plugins"]) for m in rows], unit="   "))
        print(median_line("podctl's own processes", own))
        verdict = "met" if statistics.median(own) <= TARGET_KB else "NOT met"
        print(f"target: podctl's own per-pod processes <= {TARGET_KB} kB PSS: {verdict}")
        print(f"for reference: {len(shims)} shim process(es) {shim_pss} kB in all ({shim_pss / a.pods:.0f} kB per pod), "
              f"{len(pauses)} pause processes")
        return 0
    except ps.Prereq as e:
        print(f"pod-footprint: {e}", file=sys.stderr)
        return ps.EXIT_PREREQ
    except ps.BenchError as e:
        print(f"pod-footprint: {e}", file=sys.stderr)
        return ps.EXIT_FAILED
    finally:
        b.cleanup()


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("pod-footprint: run as root", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
