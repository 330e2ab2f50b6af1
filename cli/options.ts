// Certify options from a job file (JSON or YAML), flags and environment, with the API's names.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { type NumericOption, type SchemeKind, type VoteRule, checkNumericOption, parseRule } from '../core/index.js';
import type { CertifyOptions } from '../pipeline/certify-local.js';
import type { DatasetFormat, DatasetSpec } from '../worker/types.js';

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_MODEL = join(PACKAGE_ROOT, 'models', 'fashion-mnist-column2');
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The flags shared by `certify`, `coordinator` and `demo` (node:util parseArgs config). */
export const CERTIFY_FLAGS = {
  job: { type: 'string' },
  model: { type: 'string' },
  data: { type: 'string' },
  format: { type: 'string' },
  split: { type: 'string' },
  offset: { type: 'string' },
  limit: { type: 'string' },
  'index-file': { type: 'string' },
  resize: { type: 'string' },
  crop: { type: 'string' },
  scheme: { type: 'string' },
  size: { type: 'string' },
  stride: { type: 'string' },
  thresholds: { type: 'string' },
  'max-patch': { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  'prep-threads': { type: 'string' },
  'tile-images': { type: 'string' },
  'tile-ablations': { type: 'string' },
  'unit-images': { type: 'string' },
  'unit-ablations': { type: 'string' },
  out: { type: 'string' },
  fresh: { type: 'boolean' },
  quiet: { type: 'boolean' },
  nats: { type: 'string' },
  'job-id': { type: 'string' },
} as const;

export type Flags = { [K in keyof typeof CERTIFY_FLAGS]?: (typeof CERTIFY_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

/** Guesses the data set format from what the path holds. */
export function detectFormat(path: string): DatasetFormat {
  if (!existsSync(path)) throw new Error(`data set path not found: ${path}`);
  const st = statSync(path);
  const names = st.isDirectory() ? readdirSync(path) : [path.split('/').pop() ?? ''];
  if (names.some((n) => /\.bin$/.test(n))) return 'cifar10-bin';
  if (names.some((n) => /idx\d-ubyte(\.gz)?$/.test(n))) return 'idx';
  if (st.isDirectory()) return 'imagefolder';
  throw new Error(`cannot tell the format of ${path}; pass --format cifar10-bin|idx|imagefolder`);
}

export function readJobFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`job file not found: ${path}`);
  }
  try {
    const v = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
    if (typeof v !== 'object' || v === null) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new Error(`job file ${path} is not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
}

export function parseRules(text: string): VoteRule[] {
  return text.split(',').filter((s) => s.trim() !== '').map(parseRule);
}

/** Merges job file < flags into CertifyOptions (paths in a job file are relative to the file). */
export function certifyOptionsFrom(flags: Flags, defaults: Partial<CertifyOptions> = {}): CertifyOptions {
  const file = flags.job ? readJobFile(flags.job) : {};
  const base = flags.job ? dirname(resolve(flags.job)) : process.cwd();
  const rel = (p: unknown) => (typeof p === 'string' ? resolve(base, p) : undefined);
  const fileData = (file.data ?? {}) as Partial<DatasetSpec>;
  const dataPath = flags.data ? resolve(flags.data) : rel(fileData.path) ?? defaults.data?.path;
  if (!dataPath) throw new Error('no data set: pass --data PATH (or a job file with data.path)');
  const format = (flags.format ?? fileData.format ?? defaults.data?.format ?? detectFormat(dataPath)) as DatasetFormat;
  if (!['cifar10-bin', 'idx', 'imagefolder'].includes(format)) throw new Error(`unknown --format ${format} (cifar10-bin, idx or imagefolder)`);
  const split = flags.split ?? fileData.split ?? defaults.data?.split;
  if (split !== undefined && split !== 'test' && split !== 'train') throw new Error(`--split must be test or train, got ${split}`);
  const data: DatasetSpec = { format, path: dataPath };
  if (split) data.split = split;
  // a flag wins over the job file; either is checked against the same bounds as the job spec
  const num = (flag: string | undefined, fromFile: unknown, name: NumericOption) =>
    flag !== undefined ? checkNumericOption(name, flag) : checkNumericOption(name, fromFile, `${name} in job file ${flags.job}`);
  const offset = num(flags.offset, fileData.offset, 'offset');
  const limit = num(flags.limit, fileData.limit, 'limit');
  const resize = num(flags.resize, fileData.resize, 'resize');
  const crop = num(flags.crop, fileData.crop, 'crop');
  if (offset !== undefined) data.offset = offset;
  if (limit !== undefined) data.limit = limit;
  if (resize !== undefined) data.resize = resize;
  if (crop !== undefined) data.crop = crop;
  const indexFile = flags['index-file'] ? resolve(flags['index-file']) : rel(fileData.indexFile);
  if (indexFile) data.indexFile = indexFile;

  const fileScheme = (file.scheme ?? {}) as { kind?: string; size?: number; stride?: number };
  const kind = flags.scheme ?? fileScheme.kind;
  if (kind !== undefined && !['column', 'row', 'block'].includes(kind)) throw new Error(`--scheme must be column, row or block, got ${kind}`);
  const scheme: CertifyOptions['scheme'] = {};
  if (kind) scheme.kind = kind as SchemeKind;
  const size = num(flags.size, fileScheme.size, 'size');
  const stride = num(flags.stride, fileScheme.stride, 'stride');
  if (size !== undefined) scheme.size = size;
  if (stride !== undefined) scheme.stride = stride;

  const fileRules = file.rules ?? file.thresholds;
  const rules = flags.thresholds
    ? parseRules(flags.thresholds)
    : Array.isArray(fileRules)
      ? fileRules.map((r) => parseRule(String(r)))
      : typeof fileRules === 'string'
        ? parseRules(fileRules)
        : defaults.rules;
  const fileTile = (file.tile ?? {}) as { images?: number; ablations?: number };
  const tile: CertifyOptions['tile'] = {};
  const ti = num(flags['tile-images'], fileTile.images, 'tile-images');
  const ta = num(flags['tile-ablations'], fileTile.ablations, 'tile-ablations');
  if (ti !== undefined) tile.images = ti;
  if (ta !== undefined) tile.ablations = ta;
  const out = flags.out ? resolve(flags.out) : rel(file.out) ?? defaults.out;
  if (!out) throw new Error('no output folder: pass --out DIR');
  const model = flags.model ? resolve(flags.model) : rel(file.model) ?? defaults.model ?? DEFAULT_MODEL;

  const opts: CertifyOptions = { model, data, out, scheme, tile };
  if (rules) opts.rules = rules;
  const maxPatch = num(flags['max-patch'], file.maxPatch, 'max-patch');
  if (maxPatch !== undefined) opts.maxPatch = maxPatch;
  const backend = flags.backend ?? (file.backend as string | undefined) ?? process.env.PATCHCERT_BACKEND;
  if (backend) opts.backend = backend;
  const threads = num(flags.threads, file.threads, 'threads');
  const prep = num(flags['prep-threads'], file.prepThreads, 'prep-threads');
  const unitImages = num(flags['unit-images'], file.unitImages, 'unit-images');
  if (threads !== undefined) opts.threads = threads;
  if (prep !== undefined) opts.prepThreads = prep;
  if (unitImages !== undefined) opts.unitImages = unitImages;
  if (flags.fresh) opts.fresh = true;
  if (flags['job-id']) opts.jobId = flags['job-id'];
  return opts;
}
