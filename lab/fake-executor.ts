// A fake but honest ExecutorFactory for the distributed tests: the votes of (image position,
// ablation index, rule) are a fixed pseudo-random function of those three numbers, so any
// sharding of a job must add up to exactly the counts of one pass over the whole job.
//
// The factory pins the model like a real one: it reads the manifest at job.model.ref and refuses
// the job unless sha256(formats.onnx.file) equals job.model.sha256.
//
// Knobs (also from the environment of a worker process, see knobsFromEnv):
//   delayMs       time each unit takes
//   blockMs       time each unit holds the event loop (synchronously, as a native backend call
//   blockChunks   does), in this many pieces (default 1) with the event loop free in between
//   crashUnit     unit id on which the process dies (SIGKILL on itself) half-way through
//   crashMarker   file: the crash happens only while this file does not exist (created just before),
//                 so exactly one worker dies once
//   failUnit      unit id whose execution always throws
//   flakyUnit     unit id whose execution throws once: while flakyMarker does not exist (created then)
//   failImages    image positions reported as failed images (corrupt file), counted nowhere
//   modelSha256   pretend the local model has this hash (a worker with the wrong model)
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type JobSpec, type UnitRange, JOB_SCHEMA, VoteAccumulator, jobAblations } from '../core/index.js';
import type { ExecutorFactory, ImageFailure, UnitExecutor, UnitResult } from '../worker/unit-types.js';

export interface FakeKnobs {
  delayMs?: number;
  blockMs?: number;
  blockChunks?: number;
  crashUnit?: string;
  crashMarker?: string;
  failUnit?: string;
  flakyUnit?: string;
  flakyMarker?: string;
  failImages?: number[];
  modelSha256?: string;
}

export function knobsFromEnv(env: NodeJS.ProcessEnv = process.env): FakeKnobs {
  const k: FakeKnobs = {};
  if (env.FAKE_DELAY_MS) k.delayMs = Number(env.FAKE_DELAY_MS);
  if (env.FAKE_BLOCK_MS) k.blockMs = Number(env.FAKE_BLOCK_MS);
  if (env.FAKE_BLOCK_CHUNKS) k.blockChunks = Number(env.FAKE_BLOCK_CHUNKS);
  if (env.FAKE_CRASH_UNIT) k.crashUnit = env.FAKE_CRASH_UNIT;
  if (env.FAKE_CRASH_MARKER) k.crashMarker = env.FAKE_CRASH_MARKER;
  if (env.FAKE_FAIL_UNIT) k.failUnit = env.FAKE_FAIL_UNIT;
  if (env.FAKE_FLAKY_UNIT) k.flakyUnit = env.FAKE_FLAKY_UNIT;
  if (env.FAKE_FLAKY_MARKER) k.flakyMarker = env.FAKE_FLAKY_MARKER;
  if (env.FAKE_FAIL_IMAGES) k.failImages = env.FAKE_FAIL_IMAGES.split(',').map(Number);
  if (env.FAKE_MODEL_SHA256) k.modelSha256 = env.FAKE_MODEL_SHA256;
  return k;
}

export function knobsToEnv(k: FakeKnobs): Record<string, string> {
  const env: Record<string, string> = {};
  if (k.delayMs !== undefined) env.FAKE_DELAY_MS = String(k.delayMs);
  if (k.blockMs !== undefined) env.FAKE_BLOCK_MS = String(k.blockMs);
  if (k.blockChunks !== undefined) env.FAKE_BLOCK_CHUNKS = String(k.blockChunks);
  if (k.crashUnit) env.FAKE_CRASH_UNIT = k.crashUnit;
  if (k.crashMarker) env.FAKE_CRASH_MARKER = k.crashMarker;
  if (k.failUnit) env.FAKE_FAIL_UNIT = k.failUnit;
  if (k.flakyUnit) env.FAKE_FLAKY_UNIT = k.flakyUnit;
  if (k.flakyMarker) env.FAKE_FLAKY_MARKER = k.flakyMarker;
  if (k.failImages) env.FAKE_FAIL_IMAGES = k.failImages.join(',');
  if (k.modelSha256) env.FAKE_MODEL_SHA256 = k.modelSha256;
  return env;
}

function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

function h(pos: number, abl: number, rule: number, salt: number): number {
  return mix(mix(mix(pos + 0x9e3779b9) ^ abl) ^ (rule * 31 + salt));
}

/** Counts of a range: rule 0 votes for one class per ablation, other rules for 0, 1 or 2 classes. */
export function fakeCounts(job: JobSpec, r: UnitRange, failed: ReadonlySet<number> = new Set()): Int32Array[] {
  const C = job.numClasses;
  const n = r.imgEnd - r.imgStart;
  return job.rules.map((_, rule) => {
    const out = new Int32Array(n * C);
    for (let i = 0; i < n; i++) {
      const pos = r.imgStart + i;
      if (failed.has(pos)) continue;
      for (let a = r.ablStart; a < r.ablEnd; a++) {
        const first = h(pos, a, rule, 1) % C;
        if (rule === 0) {
          out[i * C + first]!++;
          continue;
        }
        const votes = h(pos, a, rule, 2) % 3;
        if (votes >= 1) out[i * C + first]!++;
        if (votes === 2) out[i * C + ((first + 1 + (h(pos, a, rule, 3) % (C - 1))) % C)]!++;
      }
    }
    return out;
  });
}

/** The single in-process sum every distributed run must equal. */
export function expectedAccumulator(job: JobSpec, failImages: readonly number[] = []): VoteAccumulator {
  const ablations = jobAblations(job);
  const acc = new VoteAccumulator(job.dataset.images, ablations, job.numClasses, job.rules.length);
  acc.merge({ imgStart: 0, imgEnd: job.dataset.images, ablStart: 0, ablEnd: ablations, counts: fakeCounts(job, { imgStart: 0, imgEnd: job.dataset.images, ablStart: 0, ablEnd: ablations }, new Set(failImages)) });
  return acc;
}

/** setTimeout as a promise that rejects (with the signal's reason) when signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((res, rej) => {
    if (signal?.aborted) return rej(signal.reason ?? new Error('aborted'));
    const t = setTimeout(res, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      rej(signal.reason ?? new Error('aborted'));
    }, { once: true });
  });
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function fakeExecutorFactory(knobs: FakeKnobs = {}): ExecutorFactory {
  return async (job: JobSpec): Promise<UnitExecutor> => {
    const manifest = JSON.parse(readFileSync(job.model.ref, 'utf8')) as { formats: { onnx: { file: string } } };
    const file = resolve(dirname(job.model.ref), manifest.formats.onnx.file);
    const have = knobs.modelSha256 ?? sha256File(file);
    if (have !== job.model.sha256) throw new Error(`model hash mismatch: ${file} has sha256 ${have}, job pins ${job.model.sha256}`);
    const failed = new Set(knobs.failImages ?? []);
    const info = { backend: 'fake', device: 'cpu:fake', versions: { fake: '1' } };
    return {
      ...info,
      async execute(unit: UnitRange, signal?: AbortSignal): Promise<UnitResult> {
        const t0 = Date.now();
        const id = `i${unit.imgStart}-${unit.imgEnd}.a${unit.ablStart}-${unit.ablEnd}`;
        const delay = knobs.delayMs ?? 0;
        if (knobs.crashUnit === id && (!knobs.crashMarker || !existsSync(knobs.crashMarker))) {
          if (knobs.crashMarker) writeFileSync(knobs.crashMarker, `${process.pid}\n`);
          await sleep(delay / 2, signal);
          process.kill(process.pid, 'SIGKILL');
          await sleep(10_000);
        }
        await sleep(delay, signal);
        for (let c = 0; knobs.blockMs && c < (knobs.blockChunks ?? 1); c++) {
          const until = Date.now() + knobs.blockMs / (knobs.blockChunks ?? 1);
          while (Date.now() < until) {
            // busy: nothing else runs in this process meanwhile
          }
          await new Promise((r) => setImmediate(r));
        }
        if (knobs.failUnit === id) throw new Error(`fake model error on unit ${id}`);
        if (knobs.flakyUnit === id && knobs.flakyMarker && !existsSync(knobs.flakyMarker)) {
          writeFileSync(knobs.flakyMarker, `${process.pid}\n`);
          throw new Error(`fake transient error on unit ${id}`);
        }
        const failures: ImageFailure[] = [];
        for (let p = unit.imgStart; p < unit.imgEnd; p++) {
          if (failed.has(p)) failures.push({ position: p, index: p, source: `fake/${p}.png`, error: `corrupt image fake/${p}.png` });
        }
        return { ...info, unit, counts: fakeCounts(job, unit, failed), failures, preprocessMs: 0, inferenceMs: Date.now() - t0, totalMs: Date.now() - t0 };
      },
      async close() {},
    };
  };
}

export interface FakeJobOptions {
  jobId: string;
  images: number;
  /** image width: column ablations of width 2, stride 1 -> `width` ablations */
  width?: number;
  numClasses?: number;
  tile?: { images: number; ablations: number };
}

/** Writes a fake model (manifest + a small "onnx" file) into `dir` and returns a job for it. */
export async function makeFakeJob(dir: string, o: FakeJobOptions): Promise<JobSpec> {
  await mkdir(dir, { recursive: true });
  const onnx = join(dir, 'model.onnx');
  await writeFile(onnx, `fake model for ${o.jobId}\n`);
  const manifestPath = join(dir, 'model.manifest.json');
  await writeFile(manifestPath, JSON.stringify({ schema: 'patchcert-model/1', name: 'fake', formats: { onnx: { file: 'model.onnx', sha256: sha256File(onnx), layout: 'nchw' } } }));
  const width = o.width ?? 16;
  const job: JobSpec = {
    schema: JOB_SCHEMA,
    jobId: o.jobId,
    model: { name: 'fake', sha256: sha256File(onnx), format: 'onnx', ref: manifestPath },
    dataset: { spec: { format: 'fake' }, manifestSha256: 'ab'.repeat(32), images: o.images },
    geometry: { height: 8, width, channels: 1 },
    scheme: { kind: 'column', size: 2, stride: 1 },
    encoding: 'levine6',
    rules: ['argmax', 0.3],
    numClasses: o.numClasses ?? 10,
    maxPatch: 4,
    tile: o.tile ?? { images: 2, ablations: 4 },
    backend: 'fake',
  };
  return job;
}
