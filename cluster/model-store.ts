// Model files in the PATCHCERT_MODELS object store, keyed by the job's model sha256, so workers
// that do not see the coordinator's file system can still run the job.
//
// Layout: object "<sha256>" is a JSON index { manifest, files: [{ name, path, size }] } and
// object "<sha256>/<path>" holds each file, paths relative to the manifest's folder. A worker
// fetches them into <cacheDir>/<sha256>/ and checks the model hash itself when it loads the model
// (the executor factory pins it), so a corrupt copy is refused, never used.
import { createReadStream, createWriteStream, existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import type { JobSpec } from '../core/index.js';
import { MODELS_BUCKET, modelsStore } from './layout.js';

const MANIFEST_FILE = 'model.manifest.json';

export interface ModelIndex {
  schema: 'patchcert-model-files/1';
  sha256: string;
  /** the manifest's path relative to the model folder */
  manifest: string;
  files: { path: string; size: number }[];
}

/** The manifest path a model ref names (the manifest itself or its folder). */
export function manifestPathOf(ref: string): string {
  return existsSync(ref) && statSync(ref).isDirectory() ? join(ref, MANIFEST_FILE) : ref;
}

function safeRelative(base: string, file: string, what: string): string {
  const rel = relative(base, file);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new Error(`${what} ${file} lies outside the model folder ${base}; cannot publish it to the object store`);
  return rel.split(sep).join('/');
}

/** Files of the job's model format (manifest first), relative to the manifest's folder. */
export async function modelFiles(manifestPath: string, format: 'onnx' | 'tfjs'): Promise<string[]> {
  const dir = dirname(resolve(manifestPath));
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { formats?: Record<string, { file?: unknown }> };
  const entry = manifest.formats?.[format];
  if (!entry || typeof entry.file !== 'string') throw new Error(`${manifestPath}: the manifest lists no ${format} format`);
  const main = resolve(dir, entry.file);
  const files = [safeRelative(dir, resolve(manifestPath), 'manifest'), safeRelative(dir, main, 'model file')];
  if (format === 'tfjs') {
    const mj = JSON.parse(await readFile(main, 'utf8')) as { weightsManifest?: { paths?: unknown[] }[] };
    for (const g of mj.weightsManifest ?? []) {
      for (const p of g.paths ?? []) {
        if (typeof p === 'string') files.push(safeRelative(dir, resolve(dirname(main), p), 'weight file'));
      }
    }
  }
  return [...new Set(files)];
}

/**
 * Publishes the job's model files to the object store unless already there. Returns false when
 * the model ref is not a local file (nothing to upload: workers must see it themselves).
 */
export async function uploadModel(nc: NatsConnection, job: JobSpec, opts: { replicas?: number; log?: (s: string) => void } = {}): Promise<boolean> {
  const manifestPath = manifestPathOf(job.model.ref);
  if (!existsSync(manifestPath)) return false;
  const os = await modelsStore(nc, opts.replicas !== undefined ? { replicas: opts.replicas } : {});
  const sha = job.model.sha256;
  if (await os.info(sha)) return true;
  const dir = dirname(resolve(manifestPath));
  const rels = await modelFiles(manifestPath, job.model.format);
  const index: ModelIndex = { schema: 'patchcert-model-files/1', sha256: sha, manifest: rels[0]!, files: [] };
  for (const rel of rels) {
    const abs = join(dir, rel);
    const size = statSync(abs).size;
    const name = `${sha}/${rel}`;
    const have = await os.info(name);
    if (!have || have.size !== size) {
      opts.log?.(`uploading model file ${rel} (${size} bytes) to object store PATCHCERT_MODELS`);
      await os.put({ name }, Readable.toWeb(createReadStream(abs)) as ReadableStream<Uint8Array>);
    }
    index.files.push({ path: rel, size });
  }
  // the index goes last: a worker that sees it finds every file
  await os.putBlob({ name: sha }, new TextEncoder().encode(JSON.stringify(index)));
  return true;
}

function checkedPath(base: string, rel: string): string {
  const p = normalize(join(base, rel));
  if (rel.includes('\0') || isAbsolute(rel) || !p.startsWith(base + sep)) throw new Error(`model index names an unsafe path ${JSON.stringify(rel)}`);
  return p;
}

/**
 * Fetches the model pinned by `sha256` into `<cacheDir>/<sha256>/` (once) and returns the local
 * manifest path, or undefined when the object store does not hold it.
 */
export async function fetchModel(nc: NatsConnection, sha256: string, cacheDir: string): Promise<string | undefined> {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`invalid model sha256 ${JSON.stringify(sha256)}`);
  const base = resolve(cacheDir, sha256);
  const done = join(base, '.complete.json');
  if (existsSync(done)) {
    const idx = JSON.parse(await readFile(done, 'utf8')) as ModelIndex;
    return checkedPath(base, idx.manifest);
  }
  const os = await new Objm(nc).create(MODELS_BUCKET);
  const raw = await os.getBlob(sha256);
  if (!raw) return undefined;
  const idx = JSON.parse(new TextDecoder().decode(raw)) as ModelIndex;
  if (idx.schema !== 'patchcert-model-files/1' || idx.sha256 !== sha256 || !Array.isArray(idx.files)) throw new Error(`object store entry ${sha256} is not a patchcert model index`);
  const tmp = `${base}.tmp-${process.pid}-${Date.now()}`;
  await rm(tmp, { recursive: true, force: true });
  try {
    for (const f of idx.files) {
      const dst = checkedPath(tmp, f.path);
      await mkdir(dirname(dst), { recursive: true });
      const res = await os.get(`${sha256}/${f.path}`);
      if (!res) throw new Error(`object store lacks model file ${f.path} of model ${sha256}`);
      await pipeline(Readable.fromWeb(res.data as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(dst));
      const err = await res.error;
      if (err) throw err;
      if (statSync(dst).size !== f.size) throw new Error(`model file ${f.path} of ${sha256}: got ${statSync(dst).size} bytes, expected ${f.size}`);
    }
    await writeFile(join(tmp, '.complete.json'), JSON.stringify(idx));
    await mkdir(dirname(base), { recursive: true });
    try {
      await rename(tmp, base);
    } catch (e) {
      // another worker on this host won the race
      if (!existsSync(done)) throw e;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return checkedPath(base, idx.manifest);
}
