// The distributed coordinator: creates (or resumes) a job in NATS JetStream, publishes its units,
// merges the workers' partial votes exactly once per unit, tracks progress, and finishes the job.
//
// All durable state lives in JetStream: the job spec and state in the PATCHCERT_JOBS bucket, the
// units in the PATCHCERT_WORK queue, the results in PATCHCERT_RESULTS until the job is done. A
// restarted coordinator replays the job's results into a fresh VoteAccumulator (which ignores a
// unit's second result), re-publishes the units that have neither a result nor a failure report
// (the work stream's dedupe window drops those still queued) and carries on.
import { hostname } from 'node:os';
import { AckPolicy, DeliverPolicy, type JetStreamClient, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import {
  type DatasetItem,
  type ImageFailure,
  type JobSpec,
  type RunInfo,
  type UnitSize,
  type WorkUnit,
  VoteAccumulator,
  jobAblations,
  planUnits,
  validateJob,
} from '../core/index.js';
import {
  type ProgressMessage,
  MalformedMessageError,
  decodeCancel,
  decodeHeartbeat,
  decodeResult,
  encodeJobSpec,
  encodeProgress,
  encodeWorkUnit,
} from '../proto/index.js';
import { type FailedUnitRecord, type JobStateRecord, encodeState, purgeAttempts, readJob, readState } from '../cluster/jobs.js';
import { uploadModel } from '../cluster/model-store.js';
import { type NatsConnectOptions, connectNats } from '../cluster/connect.js';
import {
  DEFAULT_ACK_WAIT_MS,
  HEARTBEAT_SUBJECT,
  PUBLISH_TIMEOUT_MS,
  RESULTS_STREAM,
  WORK_STREAM,
  controlSubject,
  coordinatorConsumer,
  ensureStreams,
  jobsKv,
  progressSubject,
  queuedUnitIds,
  resultsSubject,
  specKey,
  stateKey,
  unitMsgId,
  workSubject,
} from '../cluster/layout.js';
import { type WrittenOutputs, writeJobOutputs } from '../outputs/job-outputs.js';

export const DEFAULT_MAX_ATTEMPTS = 3;
/** Forward passes per unit when no size is given: a few seconds on a GPU, tens on a CPU. */
export const DEFAULT_UNIT_PASSES = 4096;

export interface CoordinatorOptions extends NatsConnectOptions {
  /** the job (validated again here) */
  job: JobSpec;
  /** images per unit (rounded to the tile grid); default: about `unitPasses` forward passes per unit */
  unitImages?: number;
  /** ablations per unit (rounded to the tile grid); default: all of an image's ablations */
  unitAblations?: number;
  unitPasses?: number;
  /** attempts per unit before it is reported failed (default 3) */
  maxAttempts?: number;
  /** JetStream ack wait of the work consumer: a unit without heartbeat for this long is redelivered */
  ackWaitMs?: number;
  duplicateWindowMs?: number;
  /** stream and bucket replicas (3 on a JetStream cluster) */
  replicas?: number;
  /** publish the model files to the object store for workers without the shared path (default true) */
  uploadModel?: boolean;
  /** write images.jsonl, summary.json, certified.csv and the plot here when the job is done */
  output?: { dir: string; items: readonly DatasetItem[] };
  progressIntervalMs?: number;
  onProgress?: (p: ProgressMessage) => void;
  log?: (line: string) => void;
  /** keep the job's results in the stream after it is done (default: purge them) */
  keepResults?: boolean;
  /** a worker counts as live for this long after its last heartbeat */
  liveWorkerWindowMs?: number;
  /**
   * Another coordinator of the job counts as alive while it updates the job's state within this
   * time (default 5 progress intervals, at least 1 s); a resuming coordinator waits for it.
   */
  leaseMs?: number;
  /** aborting stops the coordinator (the job stays resumable) */
  signal?: AbortSignal;
  /** use this connection instead of opening one */
  connection?: NatsConnection;
}

export interface RejectedMessage {
  subject: string;
  seq: number;
  error: string;
}

export interface CoordinatorResult {
  jobId: string;
  job: JobSpec;
  /** done: every unit merged or reported failed; cancelled: by `cancel`; stopped: by the signal */
  state: 'done' | 'cancelled' | 'stopped';
  accumulator: VoteAccumulator;
  unitsTotal: number;
  unitSize: UnitSize;
  failedUnits: FailedUnitRecord[];
  failedImages: ImageFailure[];
  /** malformed or inconsistent result messages: reported, counted nowhere */
  rejected: RejectedMessage[];
  /** results for units already merged (redeliveries, duplicates, late workers) */
  duplicates: number;
  /** units merged from results that were in the stream when this coordinator started */
  resumedUnits: number;
  /** units (re)published by this coordinator */
  publishedUnits: number;
  wallSeconds: number;
  /** ablations merged during this run (excluding resumed ones) */
  ablationsRun: number;
  runs: RunInfo[];
  /** ids of the workers whose results were merged */
  workers: string[];
  outputs?: WrittenOutputs;
}

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

function varintBytes(n: number): number {
  let b = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    b++;
  }
  return b;
}

/**
 * Unit size for a job: `unitPasses` forward passes (all ablations of a few images) unless given,
 * on the tile grid, and small enough that one unit's counts fit a NATS message of `maxPayload`.
 */
export function chooseUnitSize(job: JobSpec, opts: Pick<CoordinatorOptions, 'unitImages' | 'unitAblations' | 'unitPasses'>, maxPayload: number): UnitSize {
  const total = jobAblations(job);
  const tile = job.tile;
  const roundUp = (v: number, step: number) => Math.ceil(v / step) * step;
  const ablations = Math.min(roundUp(opts.unitAblations ?? total, tile.ablations), roundUp(total, tile.ablations));
  const perImage = job.numClasses * job.rules.length * varintBytes(Math.min(ablations, total)) + 8;
  const fit = Math.floor(((maxPayload * 3) / 4 - 4096) / perImage);
  const maxImages = Math.floor(fit / tile.images) * tile.images;
  if (maxImages < tile.images) {
    throw new Error(`a unit's counts (${tile.images} images x ${job.numClasses} classes x ${job.rules.length} rules) do not fit the server's max_payload of ${maxPayload} bytes; use a smaller tile or raise max_payload`);
  }
  let images: number;
  if (opts.unitImages !== undefined) {
    images = roundUp(opts.unitImages, tile.images);
    if (images > maxImages) throw new Error(`--unit-images ${opts.unitImages}: a unit of ${images} images would not fit the server's max_payload (${maxPayload} bytes); at most ${maxImages}`);
  } else {
    const want = Math.max(1, Math.round((opts.unitPasses ?? DEFAULT_UNIT_PASSES) / ablations));
    images = Math.min(maxImages, Math.max(tile.images, Math.round(want / tile.images) * tile.images));
  }
  return { images: Math.min(images, roundUp(job.dataset.images, tile.images)), ablations };
}

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function isNotFound(e: unknown): boolean {
  return /not found/i.test(errText(e)) || (e as { code?: string }).code === '404';
}

async function retrying<T>(what: string, fn: () => Promise<T>, stop: () => boolean, log?: (s: string) => void): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (stop()) throw e;
      if (i % 10 === 3) log?.(`${what}: ${errText(e)} (retrying)`);
      await sleep(Math.min(2000, 100 * 2 ** Math.min(i, 5)));
    }
  }
}

/** Creates the job record or checks it against the stored one; returns the unit size in force. */
async function createOrResume(
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

async function publishUnits(
  js: JetStreamClient,
  job: JobSpec,
  units: readonly WorkUnit[],
  maxAttempts: number,
  stop: () => boolean,
  log: (s: string) => void,
): Promise<number> {
  const subject = workSubject(job.jobId);
  let n = 0;
  const BATCH = 256;
  for (let i = 0; i < units.length && !stop(); i += BATCH) {
    await Promise.all(
      units.slice(i, i + BATCH).map((u) => {
        const data = encodeWorkUnit({
          jobId: job.jobId,
          unitId: u.id,
          range: { imgStart: u.imgStart, imgEnd: u.imgEnd, ablStart: u.ablStart, ablEnd: u.ablEnd },
          attempt: 1,
          maxAttempts,
          modelSha256: job.model.sha256,
        });
        return retrying(`publishing unit ${u.id}`, () => js.publish(subject, data, { msgID: unitMsgId(job.jobId, u.id), timeout: PUBLISH_TIMEOUT_MS }), stop, log).then(() => {
          n++;
        });
      }),
    );
  }
  return n;
}

/** Runs (or resumes) a job to completion, cancellation or the abort signal. */
export async function runCoordinator(opts: CoordinatorOptions): Promise<CoordinatorResult> {
  const job = validateJob(opts.job);
  const jobId = job.jobId;
  const log = opts.log ?? (() => {});
  const t0 = Date.now();
  const nc = opts.connection ?? (await connectNats({ name: `patchcert coordinator ${jobId}`, ...opts }));
  let stopped = false;
  let cancelled = false;
  let cancelReason = '';
  const isStopping = () => stopped || cancelled || nc.isClosed();
  const timers: NodeJS.Timeout[] = [];
  let stopConsuming: () => void = () => {};
  const onAbort = () => {
    stopped = true;
    stopConsuming();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) stopped = true;
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const replicas = opts.replicas ?? 1;
    await retrying('creating streams', () => ensureStreams(jsm, { replicas, ackWaitMs: opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS, ...(opts.duplicateWindowMs !== undefined ? { duplicateWindowMs: opts.duplicateWindowMs } : {}) }), isStopping, log);
    const kv = await retrying('opening the jobs bucket', () => jobsKv(nc, { replicas }), isStopping, log);
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    const created = await createOrResume(kv, job, () => chooseUnitSize(job, opts, maxPayload), opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, log);
    if (created.resumed) {
      // one coordinator per job: a second one would split the results between them. The other
      // is alive while the state record keeps changing (revisions, so clocks do not matter).
      const lease = opts.leaseMs ?? Math.max(1000, 5 * (opts.progressIntervalMs ?? 2000));
      for (let warned = false; ; ) {
        const a = await readState(kv, jobId);
        if (!a || a.state.released || !a.state.coordinator || a.state.state !== 'running') break;
        await sleep(lease);
        if (isStopping()) break;
        const b = await readState(kv, jobId);
        if (!b || b.revision === a.revision) break;
        if (!warned) log(`job ${jobId} is being coordinated by ${b.state.coordinator}; waiting for it to stop`);
        warned = true;
      }
      const now = await readState(kv, jobId);
      if (now && now.state.state !== 'running') throw new Error(`job ${jobId} is already ${now.state.state}; use another job id to run it again`);
    }
    const ablations = jobAblations(job);
    const units = planUnits(job.dataset.images, ablations, job.tile, created.unitSize);
    if (units.length !== created.unitsTotal) throw new Error(`job ${jobId}: planned ${units.length} units but the job record says ${created.unitsTotal}`);
    const planned = new Map(units.map((u) => [u.id, u]));
    if (opts.uploadModel !== false) {
      const up = await uploadModel(nc, job, { replicas, log });
      if (up) log(`model ${job.model.sha256.slice(0, 12)}… is in the object store`);
    }

    const acc = new VoteAccumulator(job.dataset.images, ablations, job.numClasses, job.rules.length);
    const failedUnits = new Map<string, FailedUnitRecord>();
    const failedImages = new Map<number, ImageFailure>();
    const rejected: RejectedMessage[] = [];
    const runs = new Map<string, RunInfo>();
    const workers = new Set<string>();
    let duplicates = 0;
    let resumedUnits = 0;
    let ablationsRun = 0;
    let ablationsDone = 0;
    let imagesComplete = 0;
    let replaying = true;
    let publishedUnits = 0;
    let resumedImages = 0;
    const isDone = () => acc.mergedUnits + failedUnits.size >= units.length;

    // ---- live workers and cancellation
    const heartbeats = new Map<string, number>();
    const liveWindow = opts.liveWorkerWindowMs ?? 15_000;
    const hbSub = nc.subscribe(HEARTBEAT_SUBJECT, {
      callback: (err, m) => {
        if (err) return;
        try {
          const hb = decodeHeartbeat(m.data, m.subject);
          heartbeats.set(hb.workerId, Date.now());
        } catch {
          // a malformed heartbeat only affects the live-worker figure
        }
      },
    });
    const ctlSub = nc.subscribe(controlSubject(jobId), {
      callback: (err, m) => {
        if (err) return;
        try {
          const c = decodeCancel(m.data, m.subject, jobId);
          cancelled = true;
          cancelReason = c.reason;
          stopConsuming();
        } catch (e) {
          log(errText(e));
        }
      },
    });

    // ---- progress
    const rateWindow: { t: number; a: number }[] = [];
    const progress = (state: string): ProgressMessage => {
      const now = Date.now();
      rateWindow.push({ t: now, a: ablationsRun });
      while (rateWindow.length > 2 && now - rateWindow[0]!.t > 30_000) rateWindow.shift();
      const first = rateWindow[0]!;
      const rate = now > first.t ? ((ablationsRun - first.a) * 1000) / (now - first.t) : 0;
      const total = job.dataset.images * ablations;
      const remaining = total - ablationsDone;
      let live = 0;
      for (const t of heartbeats.values()) if (now - t <= liveWindow) live++;
      return {
        jobId,
        state,
        unitsTotal: units.length,
        unitsDone: acc.mergedUnits,
        unitsFailed: failedUnits.size,
        imagesTotal: job.dataset.images,
        imagesComplete,
        ablationsDone,
        ablationsTotal: total,
        ablationsPerSecond: rate,
        etaSeconds: remaining === 0 ? 0 : rate > 0 ? remaining / rate : -1,
        liveWorkers: live,
        elapsedSeconds: (now - t0) / 1000,
        sentAtMs: now,
      };
    };
    let stateRev: number | undefined;
    const writeState = async (patch: Partial<JobStateRecord> & { state: JobStateRecord['state'] }, force = false): Promise<void> => {
      for (let i = 0; i < 5; i++) {
        const cur = await readState(kv, jobId);
        if (cur && cur.state.state === 'cancelled' && !force) {
          cancelled = true;
          cancelReason = cur.state.reason ?? 'cancelled';
          stopConsuming();
          return;
        }
        const next: JobStateRecord = { ...(cur?.state ?? { jobId }), released: false, ...patch, jobId, updatedAtMs: Date.now(), coordinator: `${hostname()}:${process.pid}` };
        try {
          stateRev = cur ? await kv.update(stateKey(jobId), encodeState(next), cur.revision) : await kv.create(stateKey(jobId), encodeState(next));
          return;
        } catch {
          // raced with `cancel` (or another writer): read again
        }
      }
    };
    let progressBusy = false;
    const tick = () => {
      if (progressBusy || isStopping()) return;
      progressBusy = true;
      const p = progress(replaying ? 'resuming' : 'running');
      try {
        opts.onProgress?.(p);
        nc.publish(progressSubject(jobId), encodeProgress(p));
      } catch {
        // best effort
      }
      writeState({ state: 'running', progress: p })
        .catch(() => {})
        .finally(() => {
          progressBusy = false;
        });
    };
    timers.push(setInterval(tick, opts.progressIntervalMs ?? 2000));
    void stateRev;

    // ---- results: a fresh durable consumer replays everything the stream holds for the job
    const consumerName = coordinatorConsumer(jobId);
    const startConsumer = async () => {
      try {
        await jsm.consumers.delete(RESULTS_STREAM, consumerName);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      return jsm.consumers.add(RESULTS_STREAM, {
        durable_name: consumerName,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: resultsSubject(jobId),
        ack_wait: nanos(60_000),
        max_ack_pending: 20_000,
      });
    };
    const ci = await retrying('creating the results consumer', startConsumer, isStopping, log);
    const replayTotal = ci.num_pending;
    let seen = 0;
    const missing = () => units.filter((u) => !acc.has(u.id) && !failedUnits.has(u.id));
    let publishing: Promise<void> | undefined;
    const startPublishing = () => {
      replaying = false;
      resumedUnits = acc.mergedUnits + failedUnits.size;
      resumedImages = imagesComplete;
      if (resumedUnits > 0) log(`replayed ${seen} results: ${acc.mergedUnits} units merged, ${failedUnits.size} failed`);
      const all = missing();
      if (all.length === 0) return;
      publishing = (async () => {
        // units still queued from an earlier run need no second copy (the dedupe window would
        // drop it too, but only for its duration)
        const queued = created.resumed ? await queuedUnitIds(jsm, jobId).catch(() => undefined) : undefined;
        const todo = queued ? all.filter((u) => !queued.has(u.id)) : all;
        if (queued && queued.size > 0) log(`${queued.size} units still queued from before`);
        return publishUnits(js, job, todo, created.maxAttempts, isStopping, log);
      })().then(
        (n) => {
          publishedUnits += n;
          log(`published ${n} units to ${workSubject(jobId)}`);
        },
        (e) => {
          if (!isStopping()) log(`publishing units failed: ${errText(e)}`);
        },
      );
    };

    const handle = (subject: string, seq: number, data: Uint8Array) => {
      let body;
      try {
        body = decodeResult(data, subject, jobId);
      } catch (e) {
        rejected.push({ subject, seq, error: errText(e) });
        log(`rejected result #${seq}: ${errText(e)}`);
        return;
      }
      if (body.type === 'failure') {
        const f = body.failure;
        if (f.unitId === '') {
          rejected.push({ subject, seq, error: `worker ${f.workerId} refused a work message: ${f.error}` });
          log(`worker ${f.workerId} refused a work message: ${f.error}`);
          return;
        }
        if (!planned.has(f.unitId)) {
          rejected.push({ subject, seq, error: `refused message on ${subject}: failure report for unit ${f.unitId}, which is not a unit of job ${jobId}'s plan` });
          return;
        }
        if (acc.has(f.unitId) || failedUnits.has(f.unitId)) {
          duplicates++;
          return;
        }
        failedUnits.set(f.unitId, { unitId: f.unitId, error: f.error, attempts: f.attempt, kind: f.kind, workerId: f.workerId });
        log(`unit ${f.unitId} failed after ${f.attempt} attempt(s) on ${f.workerId}: ${f.error}`);
        return;
      }
      const v = body.votes;
      if (!planned.has(v.unitId)) {
        rejected.push({ subject, seq, error: `refused message on ${subject}: votes for unit ${v.unitId}, which is not a unit of job ${jobId}'s plan` });
        return;
      }
      if (v.modelSha256 !== job.model.sha256) {
        rejected.push({ subject, seq, error: `refused message on ${subject}: votes for unit ${v.unitId} from worker ${v.workerId} were computed with model ${v.modelSha256}, not the job's ${job.model.sha256}` });
        return;
      }
      if (acc.has(v.unitId)) {
        duplicates++;
        return;
      }
      const span = v.range.ablEnd - v.range.ablStart;
      for (const f of v.failures) {
        if (f.position < v.range.imgStart || f.position >= v.range.imgEnd) {
          rejected.push({ subject, seq, error: `malformed message on ${subject}: unit ${v.unitId} reports a failed image outside the unit` });
          return;
        }
      }
      try {
        acc.merge({ ...v.range, counts: v.counts });
      } catch (e) {
        rejected.push({ subject, seq, error: `malformed message on ${subject}: ${errText(e)}` });
        log(`rejected result #${seq}: ${errText(e)}`);
        return;
      }
      // a late success supersedes an earlier failure report of the same unit
      failedUnits.delete(v.unitId);
      for (const f of v.failures) failedImages.set(f.position, { position: f.position, index: f.index, source: f.source, error: f.error });
      const n = v.range.imgEnd - v.range.imgStart;
      ablationsDone += n * span;
      if (!replaying) ablationsRun += n * span;
      for (let i = v.range.imgStart; i < v.range.imgEnd; i++) if (acc.isImageComplete(i)) imagesComplete++;
      const run: RunInfo = { backend: v.backend, device: v.device, versions: v.versions };
      runs.set(canonicalJson(run), run);
      workers.add(v.workerId);
    };

    if (replayTotal === 0) startPublishing();
    let consumer = await js.consumers.get(RESULTS_STREAM, consumerName);
    while (!isDone() && !isStopping()) {
      const messages = await retrying('consuming results', () => consumer.consume({ max_messages: 512, expires: 2000 }), isStopping, log);
      stopConsuming = () => messages.stop();
      if (isStopping()) messages.stop();
      try {
        for await (const m of messages) {
          seen++;
          handle(m.subject, m.seq, m.data);
          m.ack();
          if (replaying && (seen >= replayTotal || m.info.pending === 0)) startPublishing();
          if (isDone()) break;
        }
      } catch (e) {
        // the consumer went away (deleted, lost with a server): a new one replays the job's
        // results from the start; merged units are simply ignored the second time
        if (isStopping()) break;
        log(`results consumer failed: ${errText(e)}; recreating it`);
        await retrying('recreating the results consumer', startConsumer, isStopping, log);
        consumer = await retrying('binding the results consumer', () => js.consumers.get(RESULTS_STREAM, consumerName), isStopping, log);
      } finally {
        messages.stop();
      }
    }
    stopConsuming = () => {};
    if (replaying) {
      resumedUnits = acc.mergedUnits + failedUnits.size;
      resumedImages = imagesComplete;
    }
    await publishing;
    hbSub.unsubscribe();
    ctlSub.unsubscribe();
    for (const t of timers) clearInterval(t);
    timers.length = 0;

    const wallSeconds = (Date.now() - t0) / 1000;
    const result: CoordinatorResult = {
      jobId,
      job,
      state: isDone() ? 'done' : cancelled ? 'cancelled' : 'stopped',
      accumulator: acc,
      unitsTotal: units.length,
      unitSize: created.unitSize,
      failedUnits: [...failedUnits.values()].sort((a, b) => a.unitId.localeCompare(b.unitId)),
      failedImages: [...failedImages.values()].sort((a, b) => a.position - b.position),
      rejected,
      duplicates,
      resumedUnits,
      publishedUnits,
      wallSeconds,
      ablationsRun,
      runs: [...runs.values()],
      workers: [...workers].sort(),
    };
    if (result.state === 'cancelled') {
      log(`job ${jobId} cancelled: ${cancelReason}`);
      return result;
    }
    if (result.state === 'stopped') {
      await writeState({ state: 'running', released: true }).catch(() => {});
      return result;
    }

    // ---- done: outputs, final state, then drop the job's messages
    await retrying('purging the work queue', () => jsm.streams.purge(WORK_STREAM, { filter: workSubject(jobId) }), () => nc.isClosed(), log);
    if (opts.output) {
      result.outputs = await writeJobOutputs(opts.output.dir, job, acc, opts.output.items, result.failedImages, result.failedUnits, {
        wallSeconds,
        ablationsRun,
        workers: workers.size,
        resumedImages,
        runs: result.runs,
      });
    }
    const final = progress('done');
    opts.onProgress?.(final);
    nc.publish(progressSubject(jobId), encodeProgress(final));
    await retrying(
      'recording the job as done',
      () =>
        writeState(
          {
            state: 'done',
            progress: final,
            failedUnits: result.failedUnits,
            failedImages: result.failedImages.length,
            ...(result.outputs ? { outputs: result.outputs.files } : {}),
          },
          true,
        ),
      () => nc.isClosed(),
      log,
    );
    if (!opts.keepResults) {
      await retrying('purging the results', () => jsm.streams.purge(RESULTS_STREAM, { filter: resultsSubject(jobId) }), () => nc.isClosed(), log);
    }
    await retrying('dropping the attempt counters', () => purgeAttempts(nc, jobId), () => nc.isClosed(), log);
    try {
      await jsm.consumers.delete(RESULTS_STREAM, consumerName);
    } catch {
      // gone already
    }
    log(`job ${jobId} done: ${acc.mergedUnits}/${units.length} units merged, ${failedUnits.size} failed, ${rejected.length} messages rejected, ${duplicates} duplicates ignored`);
    return result;
  } finally {
    for (const t of timers) clearInterval(t);
    opts.signal?.removeEventListener('abort', onAbort);
    if (!opts.connection) await nc.close().catch(() => {});
  }
}

export { MalformedMessageError };
