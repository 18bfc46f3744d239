#!/usr/bin/env python3
"""Import cycles between the files of src/ (the library and the binary).

    python3 scripts/import_cycles.py [--edges]

An edge A -> B means file A names an item through a path that resolves to file B:
`use crate::x::y`, `crate::x::y::f(...)` in code, `use super::...`/`self::...`, and
`improvnet::x::y` in the binary (src/main.rs, src/cli/). Paths resolve to the deepest file that
exists: `crate::refine::engine::Engine` -> src/refine/engine.rs, `crate::refine::Engine` ->
src/refine/mod.rs (re-exports are not followed further). Not edges: `mod x;` declarations (a
parent declaring a child is not a dependency), unprefixed `pub use x::...` in a mod.rs, test
modules (from `#[cfg(test)]` to the end of the file) and comments; string contents are not
parsed. Prints each cycle (a strongly connected component of two or more files) and exits 1 if
there is one.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    rel = os.path.relpath(path, SRC).replace(os.sep, "/")
    if rel in ("lib.rs", "main.rs"):
        return []
    parts = rel[:-3].split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def file_of(parts, binary):
    """The deepest file for a module path (list of names), or None."""
    base = "main.rs" if binary and not parts else "lib.rs"
    best = os.path.join(SRC, base)
    for i in range(1, len(parts) + 1):
        stem = os.path.join(SRC, *parts[:i])
        for cand in (stem + ".rs", os.path.join(stem, "mod.rs")):
            if os.path.isfile(cand):
                best = cand
                break
        else:
            break
    return best


PATH = re.compile(r"\b(crate|super|self|improvnet)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self|improvnet)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def strip_comments(text):
    """Comments and the test module (`#[cfg(test)]` / `#[cfg(all(test, ...))]` to the end of
    the file, where this project keeps it): tests may use anything."""
    text = re.sub(r"//[^\n]*", "", text)
    m = re.search(r"#\[cfg\((all\()?test\b", text)
    return text[: m.start()] if m else text


def edges(path):
    text = strip_comments(open(path, encoding="utf-8").read())
    here = module_of(path)
    rel = os.path.relpath(path, SRC).replace(os.sep, "/")
    binary = rel == "main.rs" or rel.startswith("cli/")
    # Files of the binary: `crate` is the binary's root; `improvnet::` is the library.
    out = set()

    def resolve(root, rest):
        names = [n for n in rest.split("::") if n]
        if root == "crate":
            parts, bin_ = names, binary
        elif root == "improvnet":
            parts, bin_ = names, False
        else:
            # `here` is the file's module path (a mod.rs is its folder's module), so `super`
            # is always one level up and `self` is `here`.
            base = here[:-1] if root == "super" else here
            parts, bin_ = base + names, binary
        f = file_of(parts, bin_)
        if f and os.path.abspath(f) != os.path.abspath(path):
            out.add(os.path.relpath(f, SRC))

    for m in USE_GROUP.finditer(text):
        root, prefix, inner = m.group(1), m.group(2), m.group(3)
        for item in re.split(r",(?![^{]*\})", inner):
            item = item.strip()
            if not item:
                continue
            head = re.match(r"[A-Za-z_][A-Za-z0-9_:]*", item)
            if head:
                resolve(root, prefix + "::" + head.group(0).rstrip(":"))
    for m in PATH.finditer(text):
        resolve(m.group(1), m.group(2))
    return out


def main():
    files = []
    for d, _, names in os.walk(SRC):
        files += [os.path.join(d, n) for n in names if n.endswith(".rs")]
    graph = {os.path.relpath(f, SRC): edges(f) for f in files}
    if "--edges" in sys.argv:
        for a in sorted(graph):
            for b in sorted(graph[a]):
                print(f"{a} -> {b}")
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    for c in sccs:
        print("cycle:", " <-> ".join(c))
    print(f"{len(graph)} files, {sum(len(e) for e in graph.values())} edges, {len(sccs)} cycles")
    sys.exit(1 if sccs else 0)


if __name__ == "__main__":
    main()
