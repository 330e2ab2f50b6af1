// Turns user options into a pinned, validated JobSpec: the model by sha256, the data set by the
// hash of its indexed item list, and every setting that can change a count.
import { createHash } from 'node:crypto';
import {
  type AblationScheme,
  type JobSpec,
  type TileShape,
  type VoteRule,
  JOB_SCHEMA,
  ablationCount,
  defaultTile,
  validateJob,
} from '../core/index.js';
import { indexDataset } from '../worker/datasets/index.js';
import { loadModel } from '../worker/model.js';
import type { DatasetIndex, DatasetSpec, ModelManifest } from '../worker/types.js';

export interface JobOptions {
  /** model.manifest.json or the folder holding it */
  model: string;
  data: DatasetSpec;
  /** defaults to the ablation the model was trained for */
  scheme?: Partial<AblationScheme>;
  /** vote rules; 'argmax' is always added so the base classifier's accuracy can be reported */
  rules?: VoteRule[];
  /** largest square patch side to report (default: min(height, width)) */
  maxPatch?: number;
  /** model format to run: derived from the backend when omitted */
  format?: 'onnx' | 'tfjs';
  backend?: string;
  tile?: Partial<TileShape>;
  /** fixed job id (default: derived from the job's content, so a rerun finds its own results) */
  jobId?: string;
}

export interface PreparedJob {
  job: JobSpec;
  manifest: ModelManifest;
  manifestPath: string;
  dataset: DatasetIndex;
}

export const DEFAULT_RULES: VoteRule[] = [0.3];

export function withArgmax(rules: readonly VoteRule[]): VoteRule[] {
  return rules.includes('argmax') ? [...rules] : [...rules, 'argmax'];
}

/** Which model format a backend name runs. */
export function formatForBackend(backend: string, manifest: ModelManifest): 'onnx' | 'tfjs' {
  if (backend === 'onnx') return 'onnx';
  if (backend.startsWith('tfjs')) return 'tfjs';
  // auto: the native tfjs packages when they load are tried first, but the job must pin one
  // format up front; onnx when present (fastest portable CPU backend), else tfjs.
  if (manifest.formats.onnx) return 'onnx';
  if (manifest.formats.tfjs) return 'tfjs';
  throw new Error(`model ${manifest.name} lists no onnx or tfjs format`);
}

export async function prepareJob(opts: JobOptions): Promise<PreparedJob> {
  const model = await loadModel(opts.model);
  const manifest = model.manifest;
  const geometry = { ...manifest.input };
  const dataset = await indexDataset(opts.data, geometry);
  if (dataset.items.length === 0) throw new Error(`data set ${opts.data.path} selects no images (check offset/limit/index file)`);
  const scheme: AblationScheme = {
    kind: opts.scheme?.kind ?? manifest.ablation.kind,
    size: opts.scheme?.size ?? manifest.ablation.size,
    stride: opts.scheme?.stride ?? manifest.ablation.stride,
  };
  const K = ablationCount(scheme, geometry);
  const backend = opts.backend ?? 'auto';
  const format = opts.format ?? formatForBackend(backend, manifest);
  const entry = manifest.formats[format];
  if (!entry) throw new Error(`model ${model.manifestPath} has no ${format} format (backend ${backend})`);
  const tile0 = defaultTile(K);
  const tile = { images: opts.tile?.images ?? tile0.images, ablations: Math.min(opts.tile?.ablations ?? tile0.ablations, K) };
  const body = {
    schema: JOB_SCHEMA,
    model: { name: manifest.name, sha256: entry.sha256, format, ref: model.manifestPath },
    dataset: { spec: { ...opts.data } as Record<string, unknown>, manifestSha256: dataset.manifestSha256, images: dataset.items.length },
    geometry,
    scheme,
    encoding: manifest.encoding,
    rules: withArgmax(opts.rules ?? DEFAULT_RULES),
    numClasses: manifest.classes.length,
    maxPatch: opts.maxPatch ?? Math.min(geometry.height, geometry.width),
    tile,
    backend,
  };
  // The id hashes what decides the counts (not the model's path or the backend choice).
  const identity = { ...body, model: { sha256: entry.sha256, format }, backend: undefined };
  const jobId = opts.jobId ?? `job-${createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 16)}`;
  const job = validateJob({ ...body, jobId });
  return { job, manifest, manifestPath: model.manifestPath, dataset };
}
