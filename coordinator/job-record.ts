// The job's record in the PATCHCERT_JOBS bucket as the coordinator keeps it: created once, or
// compared with the stored spec when a coordinator resumes, which then waits for any other
// coordinator of the job to let go.
import { hostname } from 'node:os';
import type { KV } from '@nats-io/kv';
import { type JobSpec, type UnitSize, jobAblations, planUnits } from '../core/index.js';
import { encodeJobSpec } from '../proto/index.js';
import { type JobStateRecord, encodeState, readJob, readState } from '../cluster/jobs.js';
import { specKey, stateKey } from '../cluster/layout.js';
import { errText, sleep } from './retry.js';

/** Stable JSON (sorted keys), to compare a resumed job's spec with the stored one. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Creates the job record or checks it against the stored one; returns the unit size in force. */
export async function createOrResume(
  kv: KV,
  job: JobSpec,
  size: () => UnitSize,
  maxAttempts: number,
  log: (s: string) => void,
): Promise<{ unitSize: UnitSize; maxAttempts: number; resumed: boolean; unitsTotal: number }> {
  for (;;) {
    const stored = await readJob(kv, job.jobId);
    if (stored) {
      if (canonicalJson(stored.job) !== canonicalJson(job)) {
        throw new Error(`job ${job.jobId} already exists with a different spec (model, data set or settings changed); use another job id`);
      }
      const st = await readState(kv, job.jobId);
      if (st && st.state.state !== 'running') throw new Error(`job ${job.jobId} is already ${st.state.state}; use another job id to run it again`);
      log(`resuming job ${job.jobId} (${stored.meta.unitsTotal} units of ${stored.meta.unitImages} images x ${stored.meta.unitAblations} ablations)`);
      return {
        unitSize: { images: stored.meta.unitImages, ablations: stored.meta.unitAblations },
        maxAttempts: stored.meta.maxAttempts,
        resumed: true,
        unitsTotal: stored.meta.unitsTotal,
      };
    }
    const unitSize = size();
    const unitsTotal = planUnits(job.dataset.images, jobAblations(job), job.tile, unitSize).length;
    const spec = encodeJobSpec({
      jobId: job.jobId,
      specJson: JSON.stringify(job),
      maxAttempts,
      unitImages: unitSize.images,
      unitAblations: unitSize.ablations,
      unitsTotal,
      createdAtMs: Date.now(),
    });
    try {
      await kv.create(specKey(job.jobId), spec);
    } catch (e) {
      if (/wrong last sequence|exists/i.test(errText(e))) continue; // raced with another coordinator: compare again
      throw e;
    }
    const state: JobStateRecord = { jobId: job.jobId, state: 'running', updatedAtMs: Date.now(), coordinator: `${hostname()}:${process.pid}` };
    await kv.put(stateKey(job.jobId), encodeState(state));
    log(`created job ${job.jobId}: ${unitsTotal} units of ${unitSize.images} images x ${unitSize.ablations} ablations`);
    return { unitSize, maxAttempts, resumed: false, unitsTotal };
  }
}

/**
 * One coordinator per job: a second one would split the results between them. The other is alive
 * while the state record keeps changing (revisions, so clocks do not matter); returns once it is
 * not, or `stop()` says so.
 */
export async function waitForOtherCoordinator(kv: KV, jobId: string, leaseMs: number, stop: () => boolean, log: (s: string) => void): Promise<void> {
  for (let warned = false; ; ) {
    const a = await readState(kv, jobId);
    if (!a || a.state.released || !a.state.coordinator || a.state.state !== 'running') break;
    await sleep(leaseMs);
    if (stop()) break;
    const b = await readState(kv, jobId);
    if (!b || b.revision === a.revision) break;
    if (!warned) log(`job ${jobId} is being coordinated by ${b.state.coordinator}; waiting for it to stop`);
    warned = true;
  }
  const now = await readState(kv, jobId);
  if (now && now.state.state !== 'running') throw new Error(`job ${jobId} is already ${now.state.state}; use another job id to run it again`);
}
