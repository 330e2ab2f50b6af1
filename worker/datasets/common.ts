// Shared pieces of the data set readers: geometry checks, uint8 -> float conversion, subsets,
// the manifest hash and a small per-thread cache of loaded binary files.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { DatasetError, type DatasetItem, type DatasetSpec } from '../types.js';

export interface Geometry {
  height: number;
  width: number;
  channels: number;
}

/** What a format's lister returns: the whole data set, before the subset is applied. */
export interface Listing {
  /** folder the item sources are made relative to in the manifest */
  root: string;
  classNames: string[];
  items: DatasetItem[];
}

/** uint8 v -> Math.fround(v / 255), the one conversion every reader uses. */
export const U8_TO_UNIT: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) t[v] = Math.fround(v / 255);
  return t;
})();

/** Copies `length` bytes of src from `start` into out (from `outOffset`) as floats in [0,1]. */
export function u8ToUnit(src: Uint8Array, start: number, length: number, out: Float32Array, outOffset = 0): void {
  const lut = U8_TO_UNIT;
  for (let i = 0; i < length; i++) out[outOffset + i] = lut[src[start + i]!]!;
}

export function checkExpect(expect: Geometry): void {
  const { height, width, channels } = expect ?? ({} as Geometry);
  for (const [k, v] of [['height', height], ['width', width]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`expected image ${k} must be a positive integer, got ${v}`);
  }
  if (channels !== 1 && channels !== 3) throw new Error(`expected image channels must be 1 or 3, got ${channels}`);
}

export function geomText(g: Geometry): string {
  return `${g.height}x${g.width}x${g.channels}`;
}

export async function statOrNull(p: string): Promise<Stats | null> {
  try {
    return await fsp.stat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw new DatasetError(`cannot access ${p}: ${(err as Error).message}`, p);
  }
}

/** Fails fast on a missing data set path; returns its stats. */
export async function statDatasetPath(p: string): Promise<Stats> {
  if (typeof p !== 'string' || p === '') throw new DatasetError('data set path is empty', String(p));
  const st = await statOrNull(p);
  if (!st) throw new DatasetError(`data set path not found: ${p}`, p);
  return st;
}

/** Reads a whole file; errors name it. */
export async function readWhole(file: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DatasetError(`file not found: ${file}`, file);
    throw new DatasetError(`cannot read ${file}: ${(err as Error).message}`, file);
  }
}

/** The spec fields that only the imagefolder format understands. */
export function rejectImageOptions(spec: DatasetSpec): void {
  if (spec.resize !== undefined || spec.crop !== undefined) {
    throw new DatasetError(
      `resize/crop apply to imagefolder data sets only; ${spec.format} images are used at their stored size (${spec.path})`,
      spec.path,
    );
  }
}

export function checkBinaryGeometry(format: string, actual: Geometry, expect: Geometry, file: string): void {
  if (actual.height !== expect.height || actual.width !== expect.width || actual.channels !== expect.channels) {
    throw new DatasetError(
      `${file}: ${format} images are ${geomText(actual)} (HxWxC) but the model expects ${geomText(expect)}`,
      file,
    );
  }
}

// ---------------------------------------------------------------- subsets

function nonNegInt(name: string, v: unknown, source: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new DatasetError(`data set ${name} must be a non-negative integer, got ${String(v)}`, source);
  }
  return v;
}

/** Parses an index file: one data set index per line, blank lines and `#` comments ignored. */
export async function readIndexFile(file: string, count: number): Promise<number[]> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DatasetError(`index file not found: ${file}`, file);
    throw new DatasetError(`cannot read index file ${file}: ${(err as Error).message}`, file);
  }
  const out: number[] = [];
  const seen = new Map<number, number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const hash = lines[i]!.indexOf('#');
    const t = (hash >= 0 ? lines[i]!.slice(0, hash) : lines[i]!).trim();
    if (t === '') continue;
    const where = `${file}:${i + 1}`;
    if (!/^\d+$/.test(t)) {
      throw new DatasetError(`${where}: "${t}" is not a data set index (expected a non-negative integer)`, file);
    }
    const idx = Number(t);
    if (!Number.isSafeInteger(idx) || idx >= count) {
      throw new DatasetError(`${where}: index ${t} is out of range (the data set has ${count} images, 0..${count - 1})`, file);
    }
    const prev = seen.get(idx);
    if (prev !== undefined) {
      throw new DatasetError(`${where}: index ${idx} is listed twice (first on line ${prev}); an image must be counted once`, file);
    }
    seen.set(idx, i + 1);
    out.push(idx);
  }
  return out;
}

/**
 * Applies the subset options in order: index file (its order, no duplicates), then offset, then
 * limit. Items are looked up by their data set index.
 */
export async function applySubset(all: DatasetItem[], spec: DatasetSpec): Promise<DatasetItem[]> {
  let items = all;
  if (spec.indexFile !== undefined) {
    const byIndex = new Map<number, DatasetItem>();
    for (const it of all) byIndex.set(it.index, it);
    const wanted = await readIndexFile(spec.indexFile, all.length);
    items = wanted.map((i) => byIndex.get(i)!);
  }
  const offset = spec.offset === undefined ? 0 : nonNegInt('offset', spec.offset, spec.path);
  const limit = spec.limit === undefined ? undefined : nonNegInt('limit', spec.limit, spec.path);
  const selected = items.slice(offset, limit === undefined ? undefined : offset + limit);
  if (selected.length === 0) {
    const from = spec.indexFile !== undefined ? `${items.length} images listed in ${spec.indexFile}` : `${items.length} images`;
    throw new DatasetError(
      `data set ${spec.path} selects no images (offset ${offset}${limit === undefined ? '' : `, limit ${limit}`} of ${from})`,
      spec.path,
    );
  }
  return selected;
}

// ---------------------------------------------------------------- manifest

/** Source as written into the manifest: relative to the data set root, '/' separators, "#record" kept. */
export function relativeSource(root: string, source: string): string {
  const hash = source.lastIndexOf('#');
  const hasRecord = hash > 0 && /^#\d+$/.test(source.slice(hash));
  const file = hasRecord ? source.slice(0, hash) : source;
  const rel = path.relative(root, file).split(path.sep).join('/');
  return hasRecord ? `${rel}${source.slice(hash)}` : rel;
}

/**
 * sha256 over a canonical JSON of the format, the geometry, resize/crop and the item list
 * (index, label, source relative to the data set root). Keys are written in a fixed order, so the
 * same data set indexed under another mount point gets the same hash.
 */
export function manifestSha256(spec: DatasetSpec, geom: Geometry, root: string, items: readonly DatasetItem[]): string {
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      schema: 'patchcert-dataset/1',
      format: spec.format,
      height: geom.height,
      width: geom.width,
      channels: geom.channels,
      resize: spec.resize ?? null,
      crop: spec.crop ?? null,
    }),
  );
  // Streamed item by item: an ImageNet-size list never becomes one giant string.
  for (const it of items) h.update(`\n${JSON.stringify([it.index, it.label, relativeSource(root, it.source)])}`);
  return h.digest('hex');
}

// ---------------------------------------------------------------- shared file cache

interface CacheEntry {
  promise: Promise<Uint8Array>;
  bytes: number;
  refs: number;
  lastUsed: number;
}

/** Bytes of released (unreferenced) files kept per thread so that short-lived readers don't reload. */
let idleBudget = 256 * 1024 * 1024;
const cache = new Map<string, CacheEntry>();
let tick = 0;

export function setIdleCacheBytes(bytes: number): void {
  idleBudget = Math.max(0, bytes);
  evictIdle();
}

/** Drops every cached file no reader holds (and forgets the rest once released). */
export function clearDatasetCache(): void {
  for (const [k, e] of cache) if (e.refs === 0) cache.delete(k);
}

function evictIdle(): void {
  const idle = [...cache.entries()].filter(([, e]) => e.refs === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
  let total = idle.reduce((s, [, e]) => s + e.bytes, 0);
  for (const [k, e] of idle) {
    if (total <= idleBudget) break;
    cache.delete(k);
    total -= e.bytes;
  }
}

/**
 * Loads a file once per thread (keyed by path, size and mtime) and shares it between readers.
 * `load` turns the path into its decoded bytes (e.g. gunzipped).
 */
export async function acquireFile(file: string, load: (file: string) => Promise<Uint8Array>): Promise<{ key: string; data: Uint8Array }> {
  const st = await statOrNull(file);
  if (!st) throw new DatasetError(`file not found: ${file}`, file);
  const key = `${path.resolve(file)}\u0000${st.size}\u0000${st.mtimeMs}`;
  let e = cache.get(key);
  if (!e) {
    const promise = load(file);
    const entry: CacheEntry = { promise, bytes: 0, refs: 0, lastUsed: ++tick };
    e = entry;
    cache.set(key, entry);
    promise.then(
      (d) => {
        entry.bytes = d.byteLength;
      },
      () => {
        if (cache.get(key) === entry) cache.delete(key);
      },
    );
  }
  e.refs++;
  e.lastUsed = ++tick;
  try {
    return { key, data: await e.promise };
  } catch (err) {
    e.refs--;
    throw err;
  }
}

export function releaseFile(key: string): void {
  const e = cache.get(key);
  if (!e) return;
  e.refs = Math.max(0, e.refs - 1);
  e.lastUsed = ++tick;
  if (e.refs === 0) evictIdle();
}

// ---------------------------------------------------------------- readers

/** Decodes the images of an indexed data set; one per data set per thread is the intended use. */
export interface ImageReader {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** H x W x C float32 in [0,1]; errors are DatasetErrors naming item.source */
  read(item: DatasetItem): Promise<Float32Array>;
  /** Same as read, writing into out at outOffset (H*W*C floats). */
  readInto(item: DatasetItem, out: Float32Array, outOffset: number): Promise<void>;
  /**
   * items.length images back to back (image-major). Imagefolder readers decode several images at
   * once (sharp runs on libuv's thread pool); the first failure rejects, naming its file.
   */
  readBatch(items: readonly DatasetItem[]): Promise<Float32Array>;
  close(): Promise<void>;
}

/** Runs fn over 0..n-1 with at most `limit` calls in flight; rejects with the first error. */
export async function forEachLimit(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < n) {
      const i = next++;
      try {
        await fn(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}
