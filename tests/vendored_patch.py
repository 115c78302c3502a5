#!/usr/bin/env python3
"""The vendored sqlx-core check (issue 17): every Cargo workspace of the repository builds the
patched crate in vendor/sqlx-core, not the one from crates.io.

The patch (see vendor/README.md) only takes effect in a workspace whose root Cargo.toml has
`[patch.crates-io] sqlx-core = { path = ".../vendor/sqlx-core" }`, and only while the patched
version still matches what sea-orm asks for; otherwise Cargo silently builds the registry's
crate and says so only as a warning. So for the main workspace and the fuzz workspace this
checks both halves: the patch line points at vendor/sqlx-core, and the lock file's sqlx-core
is the path one (no `source`, which a registry package always has) at the vendored version.

Prints every problem as `file: problem` and exits 1; run from the repository root
(`.ci/run` does, beside `tests/layering.py`).
"""
import os
import sys
import tomllib

VENDOR = "vendor/sqlx-core"
# The workspace roots: the main one and the fuzz targets' own (kept apart so the main build
# never compiles libFuzzer).
WORKSPACES = [".", "tests/fuzz"]


def load(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def check(root, version):
    problems = []
    manifest = os.path.join(root, "Cargo.toml")
    patch = load(manifest).get("patch", {}).get("crates-io", {}).get("sqlx-core")
    if not isinstance(patch, dict) or "path" not in patch:
        problems.append(f"{manifest}: no [patch.crates-io] sqlx-core = {{ path = ... }}")
    elif os.path.realpath(os.path.join(root, patch["path"])) != os.path.realpath(VENDOR):
        problems.append(f"{manifest}: the sqlx-core patch points at {patch['path']}, not {VENDOR}")
    lock = os.path.join(root, "Cargo.lock")
    packages = [p for p in load(lock).get("package", []) if p["name"] == "sqlx-core"]
    if not packages:
        problems.append(f"{lock}: no sqlx-core package")
    for p in packages:
        if "source" in p:
            problems.append(
                f"{lock}: sqlx-core {p['version']} comes from {p['source']}, not {VENDOR} "
                "(the patch no longer matches what sea-orm asks for?)"
            )
        elif p["version"] != version:
            problems.append(f"{lock}: sqlx-core {p['version']}, but {VENDOR} is {version}")
    return problems


def main():
    version = load(os.path.join(VENDOR, "Cargo.toml"))["package"]["version"]
    problems = [p for root in WORKSPACES for p in check(root, version)]
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"sqlx-core: every workspace ({', '.join(WORKSPACES)}) builds {VENDOR} {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
