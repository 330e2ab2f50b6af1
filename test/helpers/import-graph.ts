// The project's import graph, read from the source text: every relative import (static, `export
// ... from`, `import type`, dynamic `import('./x.js')`) of the TypeScript files, and every
// intra-package import of training/'s Python modules (module level or inside a function). Used by
// test/layers.test.ts to check the layer rules of docs/design.md and that no cycle exists.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, sep } from 'node:path';

/** file (repository-relative, '/'-separated) -> the files it imports */
export type Graph = Map<string, Set<string>>;

const TS_IMPORT = /^\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

function walk(root: string, dir: string, ext: string, skip: ReadonlySet<string>, out: string[]): void {
  for (const name of readdirSync(join(root, dir))) {
    const rel = dir ? `${dir}/${name}` : name;
    if (skip.has(rel)) continue;
    const st = statSync(join(root, rel));
    if (st.isDirectory()) walk(root, rel, ext, skip, out);
    else if (name.endsWith(ext) && !name.endsWith('.d.ts')) out.push(rel);
  }
}

const posix = (p: string) => p.split(sep).join('/');

/** Every module specifier a TypeScript file imports, packages included ('node:fs', './x.js'). */
export function tsSpecifiers(text: string): string[] {
  return [...text.matchAll(TS_IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/** Relative imports of a TypeScript file, resolved to repository-relative .ts paths. */
export function tsImports(file: string, text: string): string[] {
  return tsSpecifiers(text)
    .filter((spec) => spec.startsWith('.')) // a package (node:, @nats-io/…) is not a layer
    .map((spec) => posix(normalize(join(dirname(file), spec))).replace(/\.js$/, '.ts'));
}

/** The TypeScript import graph of the repository's sources (node_modules, dist and data left out). */
export function tsGraph(root: string): Graph {
  const files: string[] = [];
  walk(root, '', '.ts', new Set(['node_modules', 'dist', 'data', '.git']), files);
  const g: Graph = new Map();
  for (const f of files) g.set(f, new Set(tsImports(f, readFileSync(join(root, f), 'utf8'))));
  return g;
}

const PY_FROM = /^\s*from\s+(\.+)([\w.]*)\s+import\s+(\([^)]*\)|[^\n#]+)/gm;
const PY_IMPORT = /^\s*import\s+training\.(\w+)/gm;

/** Sibling modules a Python file of a package imports (`from .x import`, `from . import x`), as file names. */
export function pyImports(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(PY_FROM)) {
    if (m[1] !== '.') continue; // parent packages: outside training/
    if (m[2]) out.push(`${m[2].split('.')[0]}.py`);
    else for (const name of m[3]!.replace(/[()]/g, '').split(',')) out.push(`${name.trim().split(/\s+/)[0]}.py`);
  }
  for (const m of text.matchAll(PY_IMPORT)) out.push(`${m[1]}.py`);
  return out;
}

/** The import graph of one Python package folder (`training`), file names relative to the repository. */
export function pyGraph(root: string, pkg: string): Graph {
  const g: Graph = new Map();
  const files = readdirSync(join(root, pkg)).filter((f) => f.endsWith('.py'));
  for (const f of files) {
    const deps = pyImports(readFileSync(join(root, pkg, f), 'utf8'))
      .filter((d) => files.includes(d) && d !== f)
      .map((d) => `${pkg}/${d}`);
    g.set(`${pkg}/${f}`, new Set(deps));
  }
  return g;
}

/** Every cycle's files, one list per strongly connected component of more than one file (or a self-import). */
export function cycles(g: Graph): string[][] {
  // Tarjan's algorithm
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      for (;;) {
        const w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
        if (w === v) break;
      }
      if (comp.length > 1 || g.get(v)?.has(v)) out.push(comp.sort());
    }
  };
  for (const v of [...g.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** The layer of a file: its top folder, or its name for a file at the root (index.ts). */
export function layerOf(file: string): string {
  const i = file.indexOf('/');
  return i < 0 ? file : file.slice(0, i);
}

/** "a.ts -> b.ts" for every import whose target's layer `allowed` does not list for its source's layer. */
export function layerViolations(g: Graph, allowed: Record<string, readonly string[]>): string[] {
  const out: string[] = [];
  for (const [from, deps] of g) {
    const rule = allowed[layerOf(from)];
    if (!rule) {
      out.push(`${from}: its layer ${layerOf(from)} has no rule`);
      continue;
    }
    for (const to of deps) if (layerOf(to) !== layerOf(from) && !rule.includes(layerOf(to))) out.push(`${from} -> ${to}`);
  }
  return out.sort();
}
