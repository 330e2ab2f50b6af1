// Job records in the PATCHCERT_JOBS key-value bucket, and the `status` / `cancel` operations.
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { type JobSpec, type UnitAlarm, validateJob } from '../core/index.js';

export type { UnitAlarm } from '../core/index.js';
import { type JobSpecMessage, type ProgressMessage, decodeJobSpec, encodeCancel } from '../proto/index.js';
import { type NatsConnectOptions, connectNats } from './connect.js';
import { JOBS_BUCKET, RESULTS_STREAM, WORK_STREAM, attemptsKey, controlSubject, jobsKv, jobResultsSubjects, specKey, stateKey, workSubject } from './layout.js';

export type JobStateName = 'running' | 'done' | 'cancelled';

export interface FailedUnitRecord {
  unitId: string;
  error: string;
  attempts: number;
  kind: string;
  workerId: string;
}

/** JSON value of "<jobId>.state". */
export interface JobStateRecord {
  jobId: string;
  state: JobStateName;
  updatedAtMs: number;
  progress?: ProgressMessage;
  /** host:pid of the coordinator that last wrote */
  coordinator?: string;
  /** set by a coordinator that stopped (signal) and let go of the job */
  released?: boolean;
  reason?: string;
  failedUnits?: FailedUnitRecord[];
  failedImages?: number;
  outputs?: Record<string, string>;
  /** workers whose counts for a unit disagreed (see coordinator/unit-ledger.ts) */
  alarms?: UnitAlarm[];
  /** 0 for the first run; +1 each time a done job with failed units is run again */
  generation?: number;
  /** results before this stream sequence are an earlier generation's: its failures are retried */
  retryFromSeq?: number;
  /** wall time and ablations of the generations and coordinator runs before this one */
  totalWallSeconds?: number;
  totalAblationsRun?: number;
  /** set by a `cancel` that was not allowed to drop the job's queued units and results */
  purged?: boolean;
}


/** Reply inboxes of `status`, `cancel` and `jobs` (deploy/nats/patchcert-auth.conf allows the operator only these). */
export const OPERATOR_INBOX = process.env.NATS_INBOX_PREFIX || '_INBOX.operator';

export interface StoredJob {
  meta: JobSpecMessage;
  job: JobSpec;
}

const dec = new TextDecoder();
const enc = new TextEncoder();

/** A stored job spec that is not valid (as opposed to failing to read it, which may pass). */
export class InvalidJobSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidJobSpecError';
  }
}

export async function readJob(kv: KV, jobId: string): Promise<StoredJob | undefined> {
  const e = await kv.get(specKey(jobId));
  if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
  try {
    const meta = decodeJobSpec(e.value, `KV ${specKey(jobId)}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(meta.specJson);
    } catch (err) {
      throw new Error(`job ${jobId}: stored spec is not JSON: ${(err as Error).message}`);
    }
    const job = validateJob(parsed);
    if (job.jobId !== jobId || meta.jobId !== jobId) throw new Error(`job ${jobId}: stored spec names job ${job.jobId}`);
    return { meta, job };
  } catch (err) {
    throw new InvalidJobSpecError(err instanceof Error ? err.message : String(err));
  }
}

export async function readState(kv: KV, jobId: string): Promise<{ state: JobStateRecord; revision: number } | undefined> {
  const e = await kv.get(stateKey(jobId));
  if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
  return { state: JSON.parse(dec.decode(e.value)) as JobStateRecord, revision: e.revision };
}

/**
 * Counts one more attempt on a unit, unless `max` were started already. Returns the number of the
 * attempt now starting (1, 2, ...) or `max + 1` when none may start. Attempts are counted here
 * rather than by JetStream deliveries, since a delivery can be lost on its way to a worker (a
 * pull that expired while the worker's event loop was busy) without any attempt being made.
 */
export async function startAttempt(kv: KV, jobId: string, unitId: string, max: number, round = 0): Promise<number> {
  const key = attemptsKey(jobId, unitId, round);
  // Most units start once: try to create the counter first (one request), read it only if it exists.
  try {
    await kv.create(key, enc.encode('1'));
    return 1;
  } catch (err) {
    if (!/wrong last sequence|exists/i.test(String(err))) throw err;
  }
  for (let i = 0; ; i++) {
    const e = await kv.get(key);
    const n = e && e.operation === 'PUT' ? Number(dec.decode(e.value)) || 0 : 0;
    if (n >= max) return max + 1;
    try {
      if (e) await kv.update(key, enc.encode(String(n + 1)), e.revision);
      else await kv.create(key, enc.encode('1'));
      return n + 1;
    } catch (err) {
      // another worker counted an attempt meanwhile (a redelivery racing the first delivery)
      if (i >= 10 || !/wrong last sequence|exists/i.test(String(err))) throw err;
    }
  }
}

/** Drops a job's attempt counters (when it is done or cancelled). */
export async function purgeAttempts(nc: NatsConnection, jobId: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.purge(`KV_${JOBS_BUCKET}`, { filter: `$KV.${JOBS_BUCKET}.${jobId}.attempts.>` });
}

export function encodeState(s: JobStateRecord): Uint8Array {
  return enc.encode(JSON.stringify(s));
}

export interface JobStatus {
  jobId: string;
  exists: boolean;
  state?: JobStateRecord;
  spec?: StoredJob;
}

/** `patchcert status JOB` */
export async function jobStatus(jobId: string, opts: NatsConnectOptions = {}): Promise<JobStatus> {
  const nc = await connectNats({ name: `patchcert status ${jobId}`, maxReconnectAttempts: 3, inboxPrefix: OPERATOR_INBOX, ...opts });
  try {
    const kv = await jobsKv(nc, { bindOnly: true }).catch(() => undefined);
    if (!kv) return { jobId, exists: false };
    const spec = await readJob(kv, jobId);
    const st = await readState(kv, jobId);
    const out: JobStatus = { jobId, exists: spec !== undefined };
    if (spec) out.spec = spec;
    if (st) out.state = st.state;
    return out;
  } finally {
    await nc.close();
  }
}

/** Marks the job cancelled, tells its coordinator and workers, and drops its queued units. */
export async function cancelJobOn(nc: NatsConnection, jobId: string, reason = 'cancelled by user'): Promise<JobStateRecord> {
  const kv = await jobsKv(nc, { bindOnly: true });
  const spec = await readJob(kv, jobId);
  if (!spec) throw new Error(`no job ${jobId} in ${'PATCHCERT_JOBS'}`);
  for (let i = 0; ; i++) {
    const cur = await readState(kv, jobId);
    if (cur && cur.state.state !== 'running') return cur.state;
    const next: JobStateRecord = { ...(cur?.state ?? { jobId }), jobId, state: 'cancelled', reason, updatedAtMs: Date.now() };
    try {
      if (cur) await kv.update(stateKey(jobId), encodeState(next), cur.revision);
      else await kv.create(stateKey(jobId), encodeState(next));
    } catch (e) {
      if (i < 5) continue; // a coordinator wrote progress meanwhile: retry on the new revision
      throw e;
    }
    nc.publish(controlSubject(jobId), encodeCancel({ jobId, reason, requestedAtMs: Date.now() }));
    await nc.flush();
    // Drop what a cancelled job leaves behind. An operator role without purge rights (deploy/'s
    // operator) leaves it to the job's coordinator, which purges when it hears the cancel, or to an admin.
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.purge(WORK_STREAM, { filter: workSubject(jobId) });
      // a cancelled job cannot be resumed: its results and attempt counts are of no further use
      await jsm.streams.purge(RESULTS_STREAM, { filter: jobResultsSubjects(jobId) });
      await purgeAttempts(nc, jobId);
    } catch (e) {
      if (!/permission|authoriz/i.test(String(e))) throw e;
      next.purged = false;
    }
    return next;
  }
}

/** `patchcert cancel JOB` */
export async function cancelJob(jobId: string, opts: NatsConnectOptions & { reason?: string } = {}): Promise<JobStateRecord> {
  const nc = await connectNats({ name: `patchcert cancel ${jobId}`, maxReconnectAttempts: 3, inboxPrefix: OPERATOR_INBOX, ...opts });
  try {
    return await cancelJobOn(nc, jobId, opts.reason);
  } finally {
    await nc.close();
  }
}

/** A running job whose state has not been written for this long has most likely lost its coordinator. */
export const COORDINATOR_GONE_MS = 30_000;

/** One-paragraph human status; `nowMs` is when it is read (for "last seen N s ago"). */
export function formatStatus(s: JobStatus, nowMs = Date.now()): string {
  if (!s.exists) return `job ${s.jobId}: not found`;
  const st = s.state;
  const lines = [`job ${s.jobId}: ${st?.state ?? 'unknown'}${st?.reason ? ` (${st.reason})` : ''}`];
  if (s.spec) lines.push(`  model ${s.spec.job.model.name} sha256 ${s.spec.job.model.sha256.slice(0, 12)}…, ${s.spec.job.dataset.images} images, ${s.spec.meta.unitsTotal} units`);
  const ago = st?.updatedAtMs ? Math.max(0, Math.round((nowMs - st.updatedAtMs) / 1000)) : undefined;
  // no coordinator is working on it: an ETA would be a guess about nothing
  const idle = st?.state !== 'running' || st.released === true || (ago !== undefined && ago * 1000 > COORDINATOR_GONE_MS);
  const p = st?.progress;
  if (p) {
    const eta = !idle && p.etaSeconds >= 0 ? `, ETA ${Math.round(p.etaSeconds)} s` : '';
    const rate = idle ? '' : `, ${p.ablationsPerSecond.toFixed(1)} ablations/s${eta}, ${p.liveWorkers} live workers`;
    lines.push(`  units ${p.unitsDone}/${p.unitsTotal} (${p.unitsFailed} failed), images ${p.imagesComplete}/${p.imagesTotal}${rate}`);
  }
  if (st?.failedUnits?.length) lines.push(`  failed units: ${st.failedUnits.map((f) => `${f.unitId} (${f.error})`).join('; ')}`);
  if (st?.alarms?.length) lines.push(`  ALARMS (workers disagreed): ${st.alarms.map((a) => `${a.unitId} ${a.status} [${a.votes.map((v) => v.workerId).join(', ')}]`).join('; ')}`);
  if (st?.updatedAtMs) lines.push(`  updated ${new Date(st.updatedAtMs).toISOString()}${st.coordinator ? ` by ${st.coordinator}` : ''}`);
  if (st?.state === 'running' && ago !== undefined) {
    if (st.released) lines.push(`  no coordinator: the last one stopped ${ago} s ago (run the same command again to resume)`);
    else if (ago * 1000 > COORDINATOR_GONE_MS) lines.push(`  coordinator last seen ${ago} s ago (gone? run the same command again to resume)`);
  }
  return lines.join('\n');
}

export interface JobListEntry {
  jobId: string;
  state: JobStateName | 'unknown';
  unitsTotal: number;
  unitsDone?: number;
  unitsFailed?: number;
  updatedAtMs?: number;
  model: string;
  images: number;
  /** the stored spec cannot be read: why */
  error?: string;
}

/** Every job in the PATCHCERT_JOBS bucket, most recently updated first (`patchcert jobs`). */
export async function listJobs(opts: NatsConnectOptions = {}): Promise<JobListEntry[]> {
  const nc = await connectNats({ name: 'patchcert jobs', maxReconnectAttempts: 3, inboxPrefix: OPERATOR_INBOX, ...opts });
  try {
    const kv = await jobsKv(nc, { bindOnly: true }).catch(() => undefined);
    if (!kv) return [];
    const ids: string[] = [];
    for await (const k of await kv.keys('*.spec')) ids.push(k.slice(0, -'.spec'.length));
    const out: JobListEntry[] = [];
    for (const jobId of ids) {
      let spec: StoredJob | undefined;
      let error: string | undefined;
      try {
        spec = await readJob(kv, jobId);
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      if (!spec && !error) continue; // deleted
      const st = (await readState(kv, jobId))?.state;
      const e: JobListEntry = { jobId, state: st?.state ?? 'unknown', unitsTotal: spec?.meta.unitsTotal ?? 0, model: spec?.job.model.name ?? '?', images: spec?.job.dataset.images ?? 0 };
      if (st?.progress) {
        e.unitsDone = st.progress.unitsDone;
        e.unitsFailed = st.progress.unitsFailed;
      }
      if (st?.updatedAtMs) e.updatedAtMs = st.updatedAtMs;
      if (error) e.error = error;
      out.push(e);
    }
    return out.sort((a, b) => (b.updatedAtMs ?? 0) - (a.updatedAtMs ?? 0) || a.jobId.localeCompare(b.jobId));
  } finally {
    await nc.close();
  }
}

export function formatJobList(jobs: JobListEntry[]): string {
  if (jobs.length === 0) return 'no jobs';
  return jobs
    .map((j) => {
      const units = j.unitsDone !== undefined ? `${j.unitsDone}/${j.unitsTotal} units${j.unitsFailed ? ` (${j.unitsFailed} failed)` : ''}` : `${j.unitsTotal} units`;
      const when = j.updatedAtMs ? new Date(j.updatedAtMs).toISOString() : '-';
      return `${j.jobId}  ${j.state.padEnd(9)}  ${units}, ${j.images} images, model ${j.model}  ${when}${j.error ? `  (unreadable spec: ${j.error})` : ''}`;
    })
    .join('\n');
}
