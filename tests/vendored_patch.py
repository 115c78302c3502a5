#!/usr/bin/env python3
"""The vendored sqlx crates check (issue 17; sqlx-postgres since stop 30, sqlx-sqlite since
stop 35): every Cargo workspace of the repository builds the patched crates in
vendor/sqlx-core, vendor/sqlx-postgres and vendor/sqlx-sqlite, not the ones from crates.io.

A patch (see vendor/README.md) only takes effect in a workspace whose root Cargo.toml has
`[patch.crates-io] <crate> = { path = ".../vendor/<crate>" }`, and only while the patched
version still matches what sea-orm asks for; otherwise Cargo silently builds the registry's
crate and says so only as a warning. So for the main workspace and the fuzz workspace this
checks both halves for each crate: the patch line points at its vendor directory, and the
lock file's package is the path one (no `source`, which a registry package always has) at the
vendored version.

Prints every problem as `file: problem` and exits 1; run from the repository root
(`.ci/run` does, beside `tests/layering.py`).
"""
import os
import sys
import tomllib

# Each vendored crate and its directory.
VENDORED = {
    "sqlx-core": "vendor/sqlx-core",
    "sqlx-postgres": "vendor/sqlx-postgres",
    "sqlx-sqlite": "vendor/sqlx-sqlite",
}
# The workspace roots: the main one and the fuzz targets' own (kept apart so the main build
# never compiles libFuzzer).
WORKSPACES = [".", "tests/fuzz"]


def load(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def check(root, name, vendor, version):
    problems = []
    manifest = os.path.join(root, "Cargo.toml")
    patch = load(manifest).get("patch", {}).get("crates-io", {}).get(name)
    if not isinstance(patch, dict) or "path" not in patch:
        problems.append(f"{manifest}: no [patch.crates-io] {name} = {{ path = ... }}")
    elif os.path.realpath(os.path.join(root, patch["path"])) != os.path.realpath(vendor):
        problems.append(f"{manifest}: the {name} patch points at {patch['path']}, not {vendor}")
    lock = os.path.join(root, "Cargo.lock")
    packages = [p for p in load(lock).get("package", []) if p["name"] == name]
    if not packages:
        problems.append(f"{lock}: no {name} package")
    for p in packages:
        if "source" in p:
            problems.append(
                f"{lock}: {name} {p['version']} comes from {p['source']}, not {vendor} "
                "(the patch no longer matches what sea-orm asks for?)"
            )
        elif p["version"] != version:
            problems.append(f"{lock}: {name} {p['version']}, but {vendor} is {version}")
    return problems


def main():
    problems = []
    built = []
    for name, vendor in VENDORED.items():
        version = load(os.path.join(vendor, "Cargo.toml"))["package"]["version"]
        problems += [p for root in WORKSPACES for p in check(root, name, vendor, version)]
        built.append(f"{vendor} {version}")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"every workspace ({', '.join(WORKSPACES)}) builds {' and '.join(built)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
