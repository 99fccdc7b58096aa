#!/usr/bin/env python3
"""Import cycles between the top-level modules of a crate (use crate::X / crate::X:: paths)."""
import os, re, sys
args = [a for a in sys.argv[1:] if a != "-v"]
src = args[0] if args else "mkrootfs/src"
edges = {}
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith(".rs"): continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)
        top = rel.split(os.sep)[0].removesuffix(".rs")
        if top in ("lib", "main"): continue
        text = "\n".join(l for l in open(path).read().splitlines() if not l.lstrip().startswith("//"))
        # unit tests may import anything
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)[0]
        if rel.endswith("tests.rs") or "/tests/" in rel: continue
        for m in re.finditer(r"crate::(\w+)", text):
            if m.group(1) != top:
                edges.setdefault(top, set()).add(m.group(1))
                if "-v" in sys.argv: print(f"{rel}: {top} -> {m.group(1)}", file=sys.stderr)
        for m in re.finditer(r"use crate::\{([^}]*)\}", text):
            for name in re.findall(r"(?:^|,)\s*(\w+)", m.group(1)):
                if name != top: edges.setdefault(top, set()).add(name)
def cycles():
    found = set()
    def dfs(n, stack):
        for m in sorted(edges.get(n, ())):
            if m in stack:
                c = stack[stack.index(m):]
                k = min(range(len(c)), key=lambda i: c[i])
                found.add(tuple(c[k:] + c[:k]))
            elif len(stack) < 8:
                dfs(m, stack + [m])
    for n in sorted(edges): dfs(n, [n])
    return found
cs = cycles()
for c in sorted(cs): print(" -> ".join(c + (c[0],)))
sys.exit(1 if cs else 0)
