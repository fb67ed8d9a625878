#!/usr/bin/env python3
"""Top-level module import graph of a crate: edges from `crate::<m>` paths in code (comments
and doc comments ignored; #[cfg(test)] modules counted separately), and its cycles.

Usage: modgraph.py SRC_DIR [--allow a,b ...]   exit 1 when the code has a cycle other than
the allowed ones (each --allow names the modules of one permitted cycle)."""
import os, re, sys
from collections import defaultdict
root = sys.argv[1]
mods = set()
for f in os.listdir(root):
    if f.endswith('.rs') and f != 'lib.rs': mods.add(f[:-3])
    elif os.path.isdir(os.path.join(root, f)): mods.add(f)
def top(path):
    rel = os.path.relpath(path, root).split(os.sep)[0]
    return rel[:-3] if rel.endswith('.rs') else rel
edges = defaultdict(set); test_edges = defaultdict(set)
for d, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs') or (d == root and f == 'lib.rs'): continue
        p = os.path.join(d, f); m = top(p)
        text = open(p).read()
        # split off test modules (from `#[cfg(test)]\nmod` to the end: our convention)
        i = re.search(r'#\[cfg\(test\)\]\s*(pub\(crate\) )?mod \w+ \{', text)
        code, tests = (text[:i.start()], text[i.start():]) if i else (text, '')
        for part, es in ((code, edges), (tests, test_edges)):
            part = re.sub(r'//.*', '', part)
            for t in re.findall(r'crate::([a-z_]+)', part):
                if t in mods and t != m: es[m].add(t)
def sccs(g, nodes):
    idx = {}; low = {}; st = []; on = set(); out = []; c = [0]
    def go(v):
        idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
        for w in g.get(v, ()):
            if w not in idx: go(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(comp)
    for v in sorted(nodes):
        if v not in idx: go(v)
    return out
nodes = mods
print("edges (code):")
for m in sorted(edges): print(f"  {m} -> {', '.join(sorted(edges[m]))}")
cyc = [c for c in sccs(edges, nodes) if len(c) > 1]
print("cycles (code):", cyc or "none")
both = defaultdict(set)
for g in (edges, test_edges):
    for k, v in g.items(): both[k] |= v
cyc2 = [c for c in sccs(both, nodes) if len(c) > 1]
print("cycles (code + unit tests):", cyc2 or "none")
allowed = [set(a.split(',')) for a in sys.argv[3::2]] if '--allow' in sys.argv else []
bad = [c for c in cyc if set(c) not in allowed]
if bad:
    print("modgraph: import cycles not allowed:", bad, file=sys.stderr)
    sys.exit(1)
