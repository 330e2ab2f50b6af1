// The stand-in executor of the capacity, scaling and memory benchmarks and their tests: a
// UnitExecutor whose inference is replaced by a fixed cost (a sleep, or a busy-wait that holds the
// event loop like a native backend call) per unit and per image, and whose votes are a fixed
// function of (image position, ablation index, rule). Any sharding of a job must therefore add up
// to exactly standInExpected(job), so a benchmark checks its certificates' counts, not only its speed.
//
// It runs any job (a real one pinned to a real model and data set, or makeStandInJob's): it reads
// neither the model nor the images, and accepts whatever model hash the job pins.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type JobSpec, type UnitRange, JOB_SCHEMA, VoteAccumulator, jobAblations, validateJob } from '../core/index.js';
import type { ExecutorFactory, UnitExecutor, UnitResult } from '../worker/unit-types.js';
import { sleep } from './fake-executor.js';

export interface StandInCost {
  /** milliseconds per unit */
  unitMs?: number;
  /** milliseconds per image of the unit (all its ablations) */
  imageMs?: number;
  /** busy-wait instead of sleeping: the worker's event loop is held, as by a native backend call */
  busy?: boolean;
}

function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Counts of a range: rule 0 (whatever it is) gives one vote per ablation, as argmax does; every
 * other rule gives 0, 1 or 2, as a threshold rule may.
 */
export function standInCounts(job: JobSpec, r: UnitRange): Int32Array[] {
  const C = job.numClasses;
  const n = r.imgEnd - r.imgStart;
  return job.rules.map((_, rule) => {
    const out = new Int32Array(n * C);
    for (let i = 0; i < n; i++) {
      const pos = r.imgStart + i;
      const hp = mix(pos + 0x9e3779b9);
      for (let a = r.ablStart; a < r.ablEnd; a++) {
        const x = mix(mix(hp ^ a) ^ (rule * 0x2545f491));
        const first = x % C;
        const votes = rule === 0 ? 1 : (x >>> 20) % 3;
        if (votes >= 1) out[i * C + first]!++;
        if (votes === 2) out[i * C + ((first + 1 + ((x >>> 8) % (C - 1))) % C)]!++;
      }
    }
    return out;
  });
}

/** The direct computation every distributed stand-in run must equal: one pass over the whole job. */
export function standInExpected(job: JobSpec): VoteAccumulator {
  const ablations = jobAblations(job);
  const acc = new VoteAccumulator(job.dataset.images, ablations, job.numClasses, job.rules.length);
  acc.merge({ imgStart: 0, imgEnd: job.dataset.images, ablStart: 0, ablEnd: ablations, counts: standInCounts(job, { imgStart: 0, imgEnd: job.dataset.images, ablStart: 0, ablEnd: ablations }) });
  return acc;
}

/** True when two accumulators hold the same counts and coverage. */
export function sameCounts(a: VoteAccumulator, b: VoteAccumulator): boolean {
  if (a.counts.length !== b.counts.length || a.covered.length !== b.covered.length) return false;
  for (let r = 0; r < a.counts.length; r++) {
    const x = a.counts[r]!;
    const y = b.counts[r]!;
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  for (let i = 0; i < a.covered.length; i++) if (a.covered[i] !== b.covered[i]) return false;
  return true;
}

function wait(ms: number, busy: boolean, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  if (busy) {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      // held, like a backend call
    }
    return Promise.resolve();
  }
  return sleep(ms, signal);
}

export function standInExecutorFactory(cost: StandInCost = {}): ExecutorFactory {
  return async (job: JobSpec): Promise<UnitExecutor> => {
    const info = { backend: 'stand-in', device: cost.busy ? 'cpu:busy-wait' : 'cpu:sleep', versions: { standIn: '1' } };
    return {
      ...info,
      async execute(unit: UnitRange, signal?: AbortSignal): Promise<UnitResult> {
        const t0 = performance.now();
        await wait((cost.unitMs ?? 0) + (cost.imageMs ?? 0) * (unit.imgEnd - unit.imgStart), cost.busy ?? false, signal);
        const ms = performance.now() - t0;
        return { ...info, unit, counts: standInCounts(job, unit), failures: [], preprocessMs: 0, inferenceMs: ms, totalMs: ms };
      },
      async close() {},
    };
  };
}

export interface StandInJobOptions {
  jobId: string;
  images: number;
  /** ablations per image (column ablations of width 4, stride 1, on an image this wide) */
  ablations?: number;
  numClasses?: number;
  /** vote rules: argmax plus thresholds up to this many in all (default 5) */
  rules?: number;
  tile?: { images: number; ablations: number };
}

/**
 * A job for a model that does not exist: a placeholder manifest is written into `dir` (workers
 * look for it before they try the object store), the data set is a count of images.
 */
export function makeStandInJob(dir: string, o: StandInJobOptions): JobSpec {
  mkdirSync(dir, { recursive: true });
  const sha = 'c0'.repeat(32);
  const manifest = join(dir, 'model.manifest.json');
  writeFileSync(manifest, JSON.stringify({ schema: 'patchcert-model/1', name: 'stand-in', formats: { onnx: { file: 'none.onnx', sha256: sha, layout: 'nchw' } } }));
  const width = o.ablations ?? 32;
  const rules = ['argmax' as const, ...[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9].slice(0, (o.rules ?? 5) - 1)];
  return validateJob({
    schema: JOB_SCHEMA,
    jobId: o.jobId,
    model: { name: 'stand-in', sha256: sha, format: 'onnx', ref: manifest },
    dataset: { spec: { format: 'stand-in' }, manifestSha256: 'ab'.repeat(32), images: o.images },
    geometry: { height: width, width, channels: 3 },
    scheme: { kind: 'column', size: 4, stride: 1 },
    encoding: 'levine6',
    rules,
    numClasses: o.numClasses ?? 10,
    maxPatch: 5,
    tile: o.tile ?? { images: 1, ablations: width },
    backend: 'stand-in',
  });
}
