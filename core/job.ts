// The job spec: everything that determines a job's certificates, pinned so that any worker
// (or a rerun) computes the same counts, and validated before use since it crosses the network.
import { type AblationScheme, type ImageGeometry, ablationCount, validateScheme } from './ablation.js';
import { type Encoding, encodedChannels } from './encoding.js';
import { type TileShape, validateTile } from './plan.js';
import { type VoteRule, ruleLabel, validateRules } from './votes.js';

export const JOB_SCHEMA = 'patchcert-job/1';

export interface JobModelRef {
  name: string;
  /** sha256 of the model format the job runs (see worker/model.ts) */
  sha256: string;
  format: 'onnx' | 'tfjs';
  /** where workers find it: a manifest path on a shared file system, or an object-store key */
  ref: string;
}

export interface JobDatasetRef {
  /** a DatasetSpec (worker/types.ts) as plain JSON */
  spec: Record<string, unknown>;
  /** sha256 of the indexed item list; a worker whose index differs refuses the job */
  manifestSha256: string;
  images: number;
}

export interface JobSpec {
  schema: typeof JOB_SCHEMA;
  jobId: string;
  model: JobModelRef;
  dataset: JobDatasetRef;
  geometry: ImageGeometry & { channels: number };
  scheme: AblationScheme;
  encoding: Encoding;
  rules: VoteRule[];
  numClasses: number;
  /** largest square patch side reported */
  maxPatch: number;
  tile: TileShape;
  /** backend requested ('auto' or a name); results record the one used */
  backend: string;
}

export function jobAblations(job: Pick<JobSpec, 'scheme' | 'geometry'>): number {
  return ablationCount(job.scheme, job.geometry);
}

export function jobRuleLabels(job: Pick<JobSpec, 'rules'>): string[] {
  return job.rules.map(ruleLabel);
}

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SHA256 = /^[0-9a-f]{64}$/;

function need(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(`invalid job spec: ${what}`);
}

/** Validates a job spec from any source (file, flags, network); throws naming the bad field. */
export function validateJob(value: unknown): JobSpec {
  need(typeof value === 'object' && value !== null, 'not an object');
  const j = value as JobSpec;
  need(j.schema === JOB_SCHEMA, `schema must be "${JOB_SCHEMA}", got ${JSON.stringify(j.schema)}`);
  need(typeof j.jobId === 'string' && JOB_ID.test(j.jobId), `jobId must match ${JOB_ID}, got ${JSON.stringify(j.jobId)}`);
  need(typeof j.model === 'object' && j.model !== null, 'model missing');
  need(typeof j.model.sha256 === 'string' && SHA256.test(j.model.sha256), 'model.sha256 must be 64 hex digits');
  need(j.model.format === 'onnx' || j.model.format === 'tfjs', 'model.format must be onnx or tfjs');
  need(typeof j.model.ref === 'string' && j.model.ref.length > 0, 'model.ref missing');
  need(typeof j.model.name === 'string', 'model.name missing');
  need(typeof j.dataset === 'object' && j.dataset !== null, 'dataset missing');
  need(typeof j.dataset.spec === 'object' && j.dataset.spec !== null, 'dataset.spec missing');
  need(typeof j.dataset.manifestSha256 === 'string' && SHA256.test(j.dataset.manifestSha256), 'dataset.manifestSha256 must be 64 hex digits');
  need(Number.isInteger(j.dataset.images) && j.dataset.images > 0, 'dataset.images must be a positive integer');
  const g = j.geometry;
  need(typeof g === 'object' && g !== null, 'geometry missing');
  need([g.height, g.width, g.channels].every((v) => Number.isInteger(v) && v > 0 && v <= 4096), 'geometry must be positive integers');
  need(typeof j.scheme === 'object' && j.scheme !== null, 'scheme missing');
  validateScheme(j.scheme, g);
  encodedChannels(j.encoding, g.channels);
  need(Array.isArray(j.rules), 'rules must be an array');
  validateRules(j.rules);
  need(Number.isInteger(j.numClasses) && j.numClasses >= 2 && j.numClasses <= 100000, 'numClasses must be an integer >= 2');
  need(Number.isInteger(j.maxPatch) && j.maxPatch >= 1 && j.maxPatch <= Math.min(g.height, g.width), 'maxPatch must be in 1..min(height, width)');
  need(typeof j.tile === 'object' && j.tile !== null, 'tile missing');
  validateTile(j.tile, jobAblations(j));
  need(typeof j.backend === 'string', 'backend missing');
  return j;
}
