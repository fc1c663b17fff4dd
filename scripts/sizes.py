#!/usr/bin/env python3
"""Source files over 600 lines and functions over 100 lines in src/, plugins/ and crates/ (tests may
be longer: tests/ folders, tests.rs files and `#[cfg(test)]` modules are left out, and so is code a
tool generated, under `generated/` folders), and file names that mean two things: one stem (say
`config.rs`) in two folders of one crate. mod.rs, lib.rs, main.rs, error.rs and build.rs are names of a role, not
of a meaning, and are not counted. Exit code 1 when any is found, with `--check`; the default only
lists them.

    scripts/sizes.py [--check] [--max-file 600] [--max-fn 100]
"""

import argparse
import pathlib
import re
import sys

ROOTS = ["src", "plugins", "crates"]
ROLE_NAMES = {"mod.rs", "lib.rs", "main.rs", "error.rs", "build.rs"}
# One name at two layers for one thing: the command and the operation it runs.
SAME_MEANING = {
    "delete": "the delete command (app/) and the pod deletion it runs (pod/)",
    "images": "the image commands' arguments (cli/) and containerd's Images service (containerd/)",
}
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?((async|unsafe|const|extern\s+\"C\")\s+)*fn\s+([A-Za-z_][A-Za-z0-9_]*)")


def strip(line: str) -> str:
    """The line without string and char literals and `//` comments, so braces count right."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//", 1)[0]


def functions(lines):
    """(name, first line, length) of each function outside test modules."""
    found = []
    depth = 0
    test_depth = None  # the depth at which a #[cfg(test)] module was opened
    pending_test = False
    open_fns = []  # (name, start line, depth its body opens at)
    waiting = None  # a fn whose `{` has not come yet
    for number, raw in enumerate(lines, 1):
        line = strip(raw)
        if raw.strip().startswith("#[cfg(test)]"):
            pending_test = True
        match = FN.match(raw)
        if match and test_depth is None:
            waiting = (match.group(5), number)
        for ch in line:
            if ch == "{":
                if pending_test and test_depth is None:
                    test_depth = depth
                    pending_test = False
                if waiting:
                    open_fns.append((waiting[0], waiting[1], depth))
                    waiting = None
                depth += 1
            elif ch == "}":
                depth -= 1
                if open_fns and open_fns[-1][2] == depth:
                    name, start, _ = open_fns.pop()
                    found.append((name, start, number - start + 1))
                if test_depth is not None and depth == test_depth:
                    test_depth = None
            elif ch == ";" and waiting and not open_fns:
                waiting = None  # a declaration without a body (trait method)
        if pending_test and line.strip().endswith(";"):
            pending_test = False
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--max-file", type=int, default=600)
    parser.add_argument("--max-fn", type=int, default=100)
    args = parser.parse_args()
    repo = pathlib.Path(__file__).resolve().parent.parent
    big_files, big_fns = [], []
    stems = {}
    for root in ROOTS:
        for path in sorted((repo / root).rglob("*.rs")):
            relative = path.relative_to(repo)
            skipped = {"tests", "target", "generated", "examples", "benches"}
            if skipped & set(relative.parts) or path.name == "tests.rs":
                continue
            if path.name not in ROLE_NAMES and "bin" not in relative.parts and path.stem not in SAME_MEANING:
                # Per crate: two crates may each have a client.rs.
                crate = relative.parts[: relative.parts.index("src")] if "src" in relative.parts else ()
                stems.setdefault((crate, path.stem), []).append(str(relative))
            lines = path.read_text(errors="replace").splitlines()
            if len(lines) > args.max_file:
                big_files.append((len(lines), str(relative)))
            for name, start, length in functions(lines):
                if length > args.max_fn:
                    big_fns.append((length, f"{relative}:{start} {name}"))
    for length, where in sorted(big_files, reverse=True):
        print(f"file {length:5} lines  {where}")
    for length, where in sorted(big_fns, reverse=True):
        print(f"fn   {length:5} lines  {where}")
    shared = {stem: paths for (_, stem), paths in sorted(stems.items()) if len(paths) > 1}
    for stem, paths in shared.items():
        print(f"name  {stem}.rs  {'  '.join(paths)}")
    print(
        f"{len(big_files)} files over {args.max_file} lines, {len(big_fns)} functions over {args.max_fn} lines, "
        f"{len(shared)} file names in more than one folder"
    )
    return 1 if args.check and (big_files or big_fns or shared) else 0


if __name__ == "__main__":
    sys.exit(main())
