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

export interface JobRecordInForce {
  unitSize: UnitSize;
  maxAttempts: number;
  resumed: boolean;
  unitsTotal: number;
  /** fraction of units computed by two workers, fixed at creation */
  replicate: number;
  /** a done job with failed units, run again to retry exactly those */
  retrying: boolean;
  /** the stored state when resuming (generation, retryFromSeq, totals so far) */
  previous?: JobStateRecord;
}

/** Creates the job record or checks it against the stored one; returns the settings in force. */
export async function createOrResume(
  kv: KV,
  job: JobSpec,
  size: () => UnitSize,
  maxAttempts: number,
  log: (s: string) => void,
  replicate = 0,
): Promise<JobRecordInForce> {
  for (;;) {
    const stored = await readJob(kv, job.jobId);
    if (stored) {
      if (canonicalJson(stored.job) !== canonicalJson(job)) {
        throw new Error(`job ${job.jobId} already exists with a different spec (model, data set or settings changed); use another job id`);
      }
      const st = await readState(kv, job.jobId);
      const failed = st?.state.failedUnits?.length ?? 0;
      const retrying = st?.state.state === 'done' && failed > 0;
      if (st && st.state.state !== 'running' && !retrying) {
        throw new Error(
          st.state.state === 'done'
            ? `job ${job.jobId} is already done, with every unit merged${st.state.outputs ? ` (outputs: ${st.state.outputs.summary ?? Object.values(st.state.outputs)[0]})` : ''}; use another --job-id to run it again`
            : `job ${job.jobId} is already ${st.state.state}; use another --job-id to run it again`,
        );
      }
      if (stored.meta.replicate !== undefined && stored.meta.replicate !== replicate && replicate !== 0) {
        log(`job ${job.jobId} was created with --replicate ${stored.meta.replicate}; keeping that`);
      }
      log(
        retrying
          ? `job ${job.jobId} finished with ${failed} failed unit(s): running it again to retry exactly those`
          : `resuming job ${job.jobId} (${stored.meta.unitsTotal} units of ${stored.meta.unitImages} images x ${stored.meta.unitAblations} ablations)`,
      );
      return {
        unitSize: { images: stored.meta.unitImages, ablations: stored.meta.unitAblations },
        maxAttempts: stored.meta.maxAttempts,
        resumed: true,
        unitsTotal: stored.meta.unitsTotal,
        replicate: stored.meta.replicate ?? 0,
        retrying,
        ...(st ? { previous: st.state } : {}),
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
      replicate,
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
    return { unitSize, maxAttempts, resumed: false, unitsTotal, replicate, retrying: false };
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
