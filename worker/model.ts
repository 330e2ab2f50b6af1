// Model manifests: loading, validation, and the sha256 that pins a model format in a job.
//
// model.manifest.json sits beside the model files (see ModelManifest in worker/types.ts).
// Hashes: onnx = sha256 of the .onnx file; tfjs = sha256 of model.json's bytes followed by the
// bytes of each weight file, in weightsManifest order (groups in order, paths in order).
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import {
  type AblationScheme,
  type Encoding,
  INPUT_VIEWS,
  type InputView,
  type Layout,
  encodedChannels,
  viewGeometry,
  validateNormalization,
  validateScheme,
} from '../core/index.js';
import {
  type LoadedModel,
  ModelError,
  type ModelFormatEntry,
  type ModelFormatName,
  type ModelManifest,
  type ResolvedModelFormat,
} from './types.js';

export const MODEL_SCHEMA = 'patchcert-model/1';
export const MANIFEST_FILE = 'model.manifest.json';
export const MODEL_FORMATS: readonly ModelFormatName[] = ['onnx', 'tfjs'];

const SHA256_RE = /^[0-9a-f]{64}$/;

export interface LoadModelOptions {
  /** check each format's sha256 against the manifest (default true) */
  verify?: boolean;
  /** only resolve (and check) these formats; default: every format the manifest lists */
  formats?: ModelFormatName[];
}

// ---------------------------------------------------------------- manifest validation

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing (missing)';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

class ManifestChecker {
  constructor(readonly file: string) {}

  fail(field: string, message: string): never {
    throw new ModelError(`${this.file}: field "${field}" ${message}`, this.file);
  }

  obj(v: unknown, field: string): Obj {
    if (!isObj(v)) this.fail(field, `must be an object, got ${show(v)}`);
    return v;
  }

  str(v: unknown, field: string): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(field, `must be a non-empty string, got ${show(v)}`);
    return v;
  }

  posInt(v: unknown, field: string, max = 1 << 20): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
      this.fail(field, `must be an integer in 1..${max}, got ${show(v)}`);
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[]): T {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.fail(field, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${show(v)}`);
    }
    return v as T;
  }

  numbers(v: unknown, field: string): number[] {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      this.fail(field, `must be an array of finite numbers, got ${show(v)}`);
    }
    return v as number[];
  }

  /** runs a core validator, turning its message into one naming the manifest and the field */
  wrap(field: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.fail(field, `is invalid: ${(e as Error).message}`);
    }
  }
}

function validateFormatEntry(c: ManifestChecker, v: unknown, fmt: ModelFormatName): ModelFormatEntry {
  const f = `formats.${fmt}`;
  const o = c.obj(v, f);
  const file = c.str(o.file, `${f}.file`);
  if (path.isAbsolute(file)) c.fail(`${f}.file`, `must be a path relative to the manifest's folder, got ${show(file)}`);
  const sha = c.str(o.sha256, `${f}.sha256`);
  if (!SHA256_RE.test(sha)) c.fail(`${f}.sha256`, `must be 64 lower-case hex digits, got ${show(sha)}`);
  const layout = c.oneOf<Layout>(o.layout, `${f}.layout`, ['nchw', 'nhwc']);
  const entry: ModelFormatEntry = { file, sha256: sha, layout };
  for (const key of ['inputName', 'outputName', 'positionName'] as const) {
    if (o[key] !== undefined) {
      if (fmt !== 'onnx') c.fail(`${f}.${key}`, 'is only meaningful for the onnx format');
      entry[key] = c.str(o[key], `${f}.${key}`);
    }
  }
  return entry;
}

/**
 * Validates a parsed model.manifest.json. `file` names the manifest in errors.
 * Unknown top-level fields and unknown format names are ignored (newer manifests stay readable);
 * at least one of the known formats must be present.
 */
export function validateManifest(value: unknown, file: string): ModelManifest {
  const c: ManifestChecker = new ManifestChecker(file);
  if (!isObj(value)) throw new ModelError(`${file}: a model manifest must be a JSON object, got ${show(value)}`, file);
  const m = value;
  if (m.schema !== MODEL_SCHEMA) c.fail('schema', `must be "${MODEL_SCHEMA}", got ${show(m.schema)}`);
  const name = c.str(m.name, 'name');

  const inp = c.obj(m.input, 'input');
  const input = {
    height: c.posInt(inp.height, 'input.height', 16384),
    width: c.posInt(inp.width, 'input.width', 16384),
    channels: c.posInt(inp.channels, 'input.channels', 4),
  };
  if (input.channels !== 1 && input.channels !== 3) c.fail('input.channels', `must be 1 (grey) or 3 (RGB), got ${input.channels}`);

  const encoding = c.oneOf<Encoding>(m.encoding, 'encoding', ['levine6', 'mask']);

  const ab = c.obj(m.ablation, 'ablation');
  const ablation: AblationScheme = {
    kind: c.oneOf(ab.kind, 'ablation.kind', ['column', 'row', 'block']),
    size: c.posInt(ab.size, 'ablation.size', 16384),
    stride: c.posInt(ab.stride, 'ablation.stride', 16384),
  };
  c.wrap('ablation', () => validateScheme(ablation, input));
  let inputView: InputView | undefined;
  if (m.inputView !== undefined) inputView = c.oneOf<InputView>(m.inputView, 'inputView', INPUT_VIEWS);

  let normalization: ModelManifest['normalization'];
  if (m.normalization !== undefined && m.normalization !== null) {
    const n = c.obj(m.normalization, 'normalization');
    const mean = c.numbers(n.mean, 'normalization.mean');
    const std = c.numbers(n.std, 'normalization.std');
    c.wrap('normalization', () => validateNormalization({ encoding, channels: input.channels, mean, std }));
    normalization = { mean, std };
  } else {
    normalization = m.normalization as null | undefined;
  }

  if (!Array.isArray(m.classes)) c.fail('classes', `must be an array of class names, got ${show(m.classes)}`);
  const classes = m.classes.map((x, i) => c.str(x, `classes[${i}]`));
  if (classes.length < 2) c.fail('classes', `must name at least 2 classes, got ${classes.length}`);
  const seen = new Set<string>();
  for (const [i, cl] of classes.entries()) {
    if (seen.has(cl)) c.fail(`classes[${i}]`, `repeats the class name ${show(cl)}`);
    seen.add(cl);
  }

  const fo = c.obj(m.formats, 'formats');
  const formats: ModelManifest['formats'] = {};
  for (const fmt of MODEL_FORMATS) {
    if (fo[fmt] !== undefined) formats[fmt] = validateFormatEntry(c, fo[fmt], fmt);
  }
  if (!formats.onnx && !formats.tfjs) c.fail('formats', `must list an "onnx" or a "tfjs" model, got ${show(fo)}`);
  if (inputView === 'kept' && formats.tfjs) c.fail('formats.tfjs', 'is not supported for inputView "kept" models (ONNX only: they take a second, position input)');
  if (inputView !== 'kept' && formats.onnx?.positionName !== undefined) c.fail('formats.onnx.positionName', 'is only meaningful for inputView "kept" models');

  let training: ModelManifest['training'];
  if (m.training !== undefined) training = c.obj(m.training, 'training');

  const out: ModelManifest = { schema: MODEL_SCHEMA, name, input, encoding, ablation, classes, formats };
  if (normalization !== undefined) out.normalization = normalization;
  if (inputView !== undefined) out.inputView = inputView;
  if (training !== undefined) out.training = training;
  return out;
}

// ---------------------------------------------------------------- model files and hashes

async function readExisting(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new ModelError(`${what} not found: ${file}`, file);
    if (err.code === 'EISDIR') throw new ModelError(`${what} is a folder, expected a file: ${file}`, file);
    throw new ModelError(`cannot read ${what} ${file}: ${err.message}`, file);
  }
}

/** The weight files a tfjs model.json refers to, absolute, in weightsManifest order. */
export function tfjsWeightFiles(modelJsonPath: string, modelJson: unknown): string[] {
  const bad = (msg: string): never => {
    throw new ModelError(`${modelJsonPath}: not a TF.js model.json: ${msg}`, modelJsonPath);
  };
  if (!isObj(modelJson)) return bad('expected a JSON object');
  if (!isObj(modelJson.modelTopology)) bad('"modelTopology" missing');
  const wm = modelJson.weightsManifest;
  if (!Array.isArray(wm)) return bad('"weightsManifest" must be an array');
  const dir = path.dirname(modelJsonPath);
  const files: string[] = [];
  wm.forEach((g: unknown, i) => {
    if (!isObj(g) || !Array.isArray(g.paths) || !Array.isArray(g.weights)) bad(`weightsManifest[${i}] must have "paths" and "weights" arrays`);
    for (const p of (g as Obj).paths as unknown[]) {
      if (typeof p !== 'string' || p.length === 0) bad(`weightsManifest[${i}].paths holds ${show(p)}, expected file names`);
      files.push(path.resolve(dir, p as string));
    }
  });
  return files;
}

/** The bytes of one model format, read once, with their sha256. */
export interface ModelFormatData {
  format: ModelFormatName;
  path: string;
  /** files in hashing order */
  files: string[];
  /** bytes of each file, same order */
  data: Buffer[];
  sha256: string;
  /** tfjs: the parsed model.json */
  modelJson?: Obj;
}

/** Reads a model format's files (onnx: the file; tfjs: model.json and its weights) and hashes them. */
export async function readModelFormat(format: ModelFormatName, file: string): Promise<ModelFormatData> {
  const abs = path.resolve(file);
  const hash = createHash('sha256');
  if (format === 'onnx') {
    const buf = await readExisting(abs, 'ONNX model file');
    hash.update(buf);
    return { format, path: abs, files: [abs], data: [buf], sha256: hash.digest('hex') };
  }
  if (format !== 'tfjs') throw new Error(`unknown model format "${String(format)}" (expected onnx or tfjs)`);
  const jsonBuf = await readExisting(abs, 'TF.js model.json');
  let modelJson: unknown;
  try {
    modelJson = JSON.parse(jsonBuf.toString('utf8'));
  } catch (e) {
    throw new ModelError(`${abs}: not valid JSON: ${(e as Error).message}`, abs);
  }
  const weights = tfjsWeightFiles(abs, modelJson);
  hash.update(jsonBuf);
  const data = [jsonBuf];
  for (const w of weights) {
    const buf = await readExisting(w, `TF.js weight file (listed in ${abs})`);
    hash.update(buf);
    data.push(buf);
  }
  return { format, path: abs, files: [abs, ...weights], data, sha256: hash.digest('hex'), modelJson: modelJson as Obj };
}

/**
 * sha256 of a model format as pinned in manifests and jobs: `file` is the .onnx file or the
 * tfjs model.json. A job pins { format, sha256 }; a worker compares it with this.
 */
export async function hashModelFormat(format: ModelFormatName, file: string): Promise<string> {
  return (await readModelFormat(format, file)).sha256;
}

function describeFiles(d: Pick<ModelFormatData, 'format' | 'path' | 'files'>): string {
  if (d.format === 'onnx') return d.path;
  const w = d.files.slice(1).map((f) => path.basename(f));
  return `${d.path} (with weight file${w.length === 1 ? '' : 's'} ${w.join(', ') || 'none'})`;
}

/** Throws a ModelError naming the files and both hashes unless `data` matches the manifest. */
export function checkFormatHash(model: Pick<LoadedModel, 'manifestPath'>, entry: ModelFormatEntry, data: ModelFormatData): void {
  if (data.sha256 !== entry.sha256) {
    throw new ModelError(
      `sha256 mismatch for ${data.format} model ${describeFiles(data)}: manifest ${model.manifestPath} declares ${entry.sha256}, ` +
        `the file${data.files.length === 1 ? '' : 's'} hash to ${data.sha256} (model modified or corrupted?)`,
      data.path,
    );
  }
}

// ---------------------------------------------------------------- loading

async function findManifest(p: string): Promise<string> {
  const abs = path.resolve(p);
  let st;
  try {
    st = await stat(abs);
  } catch {
    throw new ModelError(`model not found: ${abs} (expected a ${MANIFEST_FILE} or the folder holding one)`, abs);
  }
  if (!st.isDirectory()) return abs;
  const m = path.join(abs, MANIFEST_FILE);
  try {
    await stat(m);
  } catch {
    throw new ModelError(`model folder ${abs} has no ${MANIFEST_FILE} (expected ${m})`, m);
  }
  return m;
}

/**
 * Loads a model: `p` is a model.manifest.json or the folder holding one. Validates every manifest
 * field, resolves the format files against the manifest's folder, and checks each format's sha256.
 */
export async function loadModel(p: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const manifestPath = await findManifest(p);
  const raw = await readExisting(manifestPath, 'model manifest');
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new ModelError(`${manifestPath}: not valid JSON: ${(e as Error).message}`, manifestPath);
  }
  const manifest = validateManifest(json, manifestPath);
  const dir = path.dirname(manifestPath);
  const model: LoadedModel = {
    manifestPath,
    dir,
    manifest,
    manifestSha256: createHash('sha256').update(raw).digest('hex'),
    formats: {},
  };
  const wanted = opts.formats ?? MODEL_FORMATS;
  for (const fmt of MODEL_FORMATS) {
    const entry = manifest.formats[fmt];
    if (!entry || !wanted.includes(fmt)) continue;
    const file = path.resolve(dir, entry.file);
    const data = await readModelFormat(fmt, file);
    if (opts.verify !== false) checkFormatHash(model, entry, data);
    const resolved: ResolvedModelFormat = { format: fmt, entry, path: file, files: data.files, sha256: data.sha256 };
    model.formats[fmt] = resolved;
  }
  for (const fmt of opts.formats ?? []) {
    if (!model.formats[fmt]) throw new ModelError(`${manifestPath}: the manifest lists no ${fmt} format (has: ${Object.keys(manifest.formats).join(', ')})`, manifestPath);
  }
  return model;
}

/** The format of a loaded model whose sha256 is `sha256`, if any (to match a job's pin). */
export function formatWithHash(model: LoadedModel, sha256: string): ModelFormatName | undefined {
  return MODEL_FORMATS.find((f) => model.formats[f]?.sha256 === sha256);
}

// ---------------------------------------------------------------- shapes

/** Encoded per-sample input dims in layout order: [E, H, W] (nchw) or [H, W, E] (nhwc). */
export function encodedInputShape(manifest: ModelManifest, layout: Layout): [number, number, number] {
  const { height: H, width: W } = viewGeometry(manifest.inputView, manifest.ablation, manifest.input);
  const E = encodedChannels(manifest.encoding, manifest.input.channels);
  return layout === 'nchw' ? [E, H, W] : [H, W, E];
}

/** "[N,2,28,28] (nchw: levine6 encoding of 28x28x1 = 2 channels)" */
export function describeExpectedInput(manifest: ModelManifest, layout: Layout): string {
  const s = encodedInputShape(manifest, layout);
  const { height: H, width: W, channels: C } = manifest.input;
  const view = manifest.inputView === 'kept' ? `the kept ${s[layout === 'nchw' ? 1 : 0]}x${s[layout === 'nchw' ? 2 : 1]} view of ` : '';
  return `[N,${s.join(',')}] (${layout}: ${manifest.encoding} encoding of ${view}${H}x${W}x${C} = ${encodedChannels(manifest.encoding, C)} channels)`;
}
