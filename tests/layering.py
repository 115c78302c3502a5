#!/usr/bin/env python3
"""The layering check (issue 17): fails on an import circle between top-level modules of src/,
and on an import from `config` or `engine` into anything but a leaf module.

A top-level module is `src/<name>.rs` or `src/<name>/`. An edge A -> B is a `crate::B` path in
code of A (comments are skipped; `crate::{b, c}` groups count too). `lib.rs` and `main.rs` sit
above everything and are not checked. A leaf is a module that names no other module of the crate
(`whatsapp`, `phone`, `money`, ...); `config` and `engine` are the floor the rest stands on (the
settings everyone reads, the pure dialogue engine), so they may use leaves and nothing else.

Prints every offending edge as `file:line: A -> B` and exits 1; run from the repository root
(`.ci/run` does, before `cargo fmt`).
"""
import os
import re
import sys
from collections import defaultdict

SRC = "src"
FLOOR = ("config", "engine")
# Edges allowed although they break a rule above, each with its reason. Keep it empty: fix the
# import instead (move the type down, or pass the value in).
ALLOWED = {}


def top_module(path):
    rel = os.path.relpath(path, SRC).split(os.sep)[0]
    return rel[:-3] if rel.endswith(".rs") else rel


def strip_comments(text):
    # Line comments only (the crate has no block comments around code); keeps line numbers.
    return "\n".join(line.split("//", 1)[0] for line in text.split("\n"))


def group_names(text, start):
    """Top-level names of a `crate::{...}` group starting just after its `{`."""
    names, depth, i, token = [], 0, start, ""
    expect = True  # at the start of an item of this group
    while i < len(text):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and c == ",":
            expect = True
        elif depth == 0 and expect and (c.isalnum() or c == "_"):
            token += c
            i += 1
            continue
        if token:
            names.append((token, i))
            token, expect = "", False
        i += 1
    return names


def edges():
    found = defaultdict(list)  # (a, b) -> ["file:line", ...]
    for dirpath, _, files in os.walk(SRC):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            a = top_module(path)
            if a in ("lib", "main"):
                continue
            with open(path, encoding="utf-8") as f:
                text = strip_comments(f.read())
            hits = []
            for m in re.finditer(r"\bcrate::(\{|[a-z_][a-z0-9_]*)", text):
                if m.group(1) == "{":
                    hits += group_names(text, m.end())
                else:
                    hits.append((m.group(1), m.start()))
            for b, pos in hits:
                if b != a and b != "self":
                    line = text.count("\n", 0, pos) + 1
                    found[(a, b)].append(f"{path}:{line}")
    return found


def strongly_connected(nodes, graph):
    """Tarjan's algorithm: the components with more than one module."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    found = {k: v for k, v in edges().items() if k not in ALLOWED}
    graph, nodes = defaultdict(set), set()
    for a, b in found:
        graph[a].add(b)
        nodes |= {a, b}
    problems = []
    for comp in strongly_connected(nodes, graph):
        problems.append(f"import circle between {', '.join(sorted(comp))}:")
        for (a, b), places in sorted(found.items()):
            if a in comp and b in comp:
                problems += [f"  {p}: {a} -> {b}" for p in places]
    leaves = {m for m in nodes if not graph[m]}
    for (a, b), places in sorted(found.items()):
        if a in FLOOR and b not in leaves:
            problems.append(f"upward import from {a} into {b} (not a leaf module):")
            problems += [f"  {p}: {a} -> {b}" for p in places]
    if problems:
        print("\n".join(problems))
        print("layering check failed: move the type or function down, see tests/layering.py")
        return 1
    print(f"layering: {len(nodes)} modules, {len(found)} imports between them, no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
