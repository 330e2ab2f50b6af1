// The distributed coordinator: creates (or resumes) a job in NATS JetStream, publishes its units,
// merges the workers' partial votes exactly once per unit, tracks progress, and finishes the job.
//
// All durable state lives in JetStream: the job spec and state in the PATCHCERT_JOBS bucket, the
// units in the PATCHCERT_WORK queue, the results in PATCHCERT_RESULTS until the job is done. A
// restarted coordinator replays the job's results into a fresh VoteAccumulator (which ignores a
// unit's second result), re-publishes the units that have neither a result nor a failure report
// (the work stream's dedupe window drops those still queued) and carries on.
import { hostname } from 'node:os';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import {
  type DatasetItem,
  type ImageFailure,
  type JobSpec,
  type RunInfo,
  type UnitSize,
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
  encodeProgress,
} from '../proto/index.js';
import { type FailedUnitRecord, type JobStateRecord, type UnitAlarm, encodeState, purgeAttempts, readState } from '../cluster/jobs.js';
import { uploadModel } from '../cluster/model-store.js';
import { type NatsConnectOptions, connectNats } from '../cluster/connect.js';
import {
  DEFAULT_ACK_WAIT_MS,
  HEARTBEAT_SUBJECT,
  RESULTS_STREAM,
  WORK_STREAM,
  controlSubject,
  coordinatorConsumer,
  ensureStreams,
  jobsKv,
  progressSubject,
  queuedOffers,
  jobResultsSubjects,
  stateKey,
  workSubject,
} from '../cluster/layout.js';
import { type WrittenOutputs, writeJobOutputs } from '../outputs/job-outputs.js';
import { createOrResume, waitForOtherCoordinator } from './job-record.js';
import { publishReoffer, publishUnits } from './publish-units.js';
import { type RejectedMessage, ResultMerger } from './result-merger.js';
import { errText, isNotFound, retrying } from './retry.js';
import { type UnitSizeOptions, chooseUnitSize } from './unit-size.js';

export { DEFAULT_UNIT_PASSES, chooseUnitSize } from './unit-size.js';
export { canonicalJson } from './job-record.js';
export type { RejectedMessage } from './result-merger.js';

export const DEFAULT_MAX_ATTEMPTS = 3;

export interface CoordinatorOptions extends NatsConnectOptions, UnitSizeOptions {
  /** the job (validated again here) */
  job: JobSpec;
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
  /**
   * Fraction of units (0..1) computed by two distinct workers and accepted only when their counts
   * are byte-equal (default 0; fixed when the job is created)
   */
  replicate?: number;
  /** aborting stops the coordinator (the job stays resumable) */
  signal?: AbortSignal;
  /** use this connection instead of opening one */
  connection?: NatsConnection;
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
  /** units on which workers returned different counts */
  alarms: UnitAlarm[];
  /** true when any alarm was raised: some worker is broken or dishonest */
  flagged: boolean;
  /** for each merged unit, the workers whose (equal) counts it holds */
  unitWorkers: Record<string, string[]>;
  /** ablations computed during this run, replicas and recomputations included */
  ablationsComputed: number;
  /** wall time and ablations over every coordinator run of the job (resumes, retries) */
  totalWallSeconds: number;
  totalAblationsRun: number;
  outputs?: WrittenOutputs;
}

/** Runs (or resumes) a job to completion, cancellation or the abort signal. */
export async function runCoordinator(opts: CoordinatorOptions): Promise<CoordinatorResult> {
  const job = validateJob(opts.job);
  const jobId = job.jobId;
  const log = opts.log ?? (() => {});
  const t0 = Date.now();
  const inboxPrefix = opts.inboxPrefix ?? (process.env.NATS_INBOX_PREFIX || `_INBOX.coordinator.${jobId}`);
  const nc = opts.connection ?? (await connectNats({ name: `patchcert coordinator ${jobId}`, ...opts, inboxPrefix }));
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
    const replicate = opts.replicate ?? 0;
    if (!(replicate >= 0 && replicate <= 1)) throw new Error(`replicate must be a fraction in [0, 1], got ${String(opts.replicate)}`);
    const created = await createOrResume(kv, job, () => chooseUnitSize(job, opts, maxPayload), opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, log, replicate);
    if (created.resumed && !created.retrying) {
      await waitForOtherCoordinator(kv, jobId, opts.leaseMs ?? Math.max(1000, 5 * (opts.progressIntervalMs ?? 2000)), isStopping, log);
    }
    const ablations = jobAblations(job);
    const units = planUnits(job.dataset.images, ablations, job.tile, created.unitSize);
    if (units.length !== created.unitsTotal) throw new Error(`job ${jobId}: planned ${units.length} units but the job record says ${created.unitsTotal}`);
    if (opts.uploadModel !== false) {
      const up = await uploadModel(nc, job, { replicas, log });
      if (up) log(`model ${job.model.sha256.slice(0, 12)}… is in the object store`);
    }

    // a retry of a done job reads the earlier runs' results again but not their failure verdicts
    const prev = created.previous;
    let generation = prev?.generation ?? 0;
    let retryFromSeq = prev?.retryFromSeq ?? 0;
    if (created.retrying) {
      generation++;
      retryFromSeq = (await retrying('reading the results stream', () => jsm.streams.info(RESULTS_STREAM), isStopping, log)).state.last_seq + 1;
    }
    const priorWall = prev?.totalWallSeconds ?? 0;
    const priorAblations = prev?.totalAblationsRun ?? 0;
    const merger = new ResultMerger(job, units, log, {
      replicate: created.replicate,
      maxRounds: Math.max(4, created.maxAttempts + 1),
      ignoreFailuresBeforeSeq: retryFromSeq,
    });
    const { acc, failedUnits, rejected, ledger } = merger;
    const unitById = new Map(units.map((u) => [u.id, u]));
    const recordExtras = (): Partial<JobStateRecord> => ({
      alarms: ledger.alarmList(),
      generation,
      retryFromSeq,
      totalWallSeconds: priorWall + (Date.now() - t0) / 1000,
      totalAblationsRun: priorAblations + merger.ablationsRun,
    });
    let resumedUnits = 0;
    let publishedUnits = 0;
    let resumedImages = 0;
    const isDone = () => merger.settled >= units.length;

    // ---- live workers and cancellation
    const heartbeats = new Map<string, number>();
    /** workers that said they are draining (stopped pulling): no offer waits for them */
    const draining = new Set<string>();
    const liveWindow = opts.liveWorkerWindowMs ?? 15_000;
    const hbSub = nc.subscribe(HEARTBEAT_SUBJECT, {
      callback: (err, m) => {
        if (err) return;
        try {
          const hb = decodeHeartbeat(m.data, m.subject);
          heartbeats.set(hb.workerId, Date.now());
          if (hb.state === 'draining') draining.add(hb.workerId);
          else draining.delete(hb.workerId);
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
      rateWindow.push({ t: now, a: merger.ablationsRun });
      while (rateWindow.length > 2 && now - rateWindow[0]!.t > 30_000) rateWindow.shift();
      const first = rateWindow[0]!;
      const rate = now > first.t ? ((merger.ablationsRun - first.a) * 1000) / (now - first.t) : 0;
      const total = job.dataset.images * ablations;
      const remaining = total - merger.ablationsDone;
      let live = 0;
      for (const t of heartbeats.values()) if (now - t <= liveWindow) live++;
      return {
        jobId,
        state,
        unitsTotal: units.length,
        unitsDone: acc.mergedUnits,
        unitsFailed: failedUnits.size,
        imagesTotal: job.dataset.images,
        imagesComplete: merger.imagesComplete,
        ablationsDone: merger.ablationsDone,
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
        const next: JobStateRecord = { ...(cur?.state ?? { jobId }), released: false, ...recordExtras(), ...patch, jobId, updatedAtMs: Date.now(), coordinator: `${hostname()}:${process.pid}` };
        try {
          stateRev = cur ? await kv.update(stateKey(jobId), encodeState(next), cur.revision) : await kv.create(stateKey(jobId), encodeState(next));
          return;
        } catch {
          // raced with `cancel` (or another writer): read again
        }
      }
    };
    // assigned below, once the offers can be made; the progress timer may tick before that
    let flushReoffers: () => void = () => {};
    let progressBusy = false;
    const tick = () => {
      if (progressBusy || isStopping()) return;
      progressBusy = true;
      const p = progress(merger.replaying ? 'resuming' : 'running');
      try {
        opts.onProgress?.(p);
        nc.publish(progressSubject(jobId), encodeProgress(p));
      } catch {
        // best effort
      }
      flushReoffers();
      writeState({ state: 'running', progress: p })
        .catch(() => {})
        .finally(() => {
          progressBusy = false;
        });
    };
    if (created.retrying) await writeState({ state: 'running', failedUnits: [], failedImages: 0 }, true);
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
        filter_subject: jobResultsSubjects(jobId),
        ack_wait: nanos(60_000),
        max_ack_pending: 20_000,
      });
    };
    const ci = await retrying('creating the results consumer', startConsumer, isStopping, log);
    const replayTotal = ci.num_pending;
    let seen = 0;
    let publishing: Promise<void> | undefined;
    /** until the first offers are out (and, on a resume, the queue has been read) */
    let offersReady = false;
    const startPublishing = () => {
      merger.replaying = false;
      resumedUnits = merger.settled;
      resumedImages = merger.imagesComplete;
      if (resumedUnits > 0 || seen > 0) log(`replayed ${seen} results: ${acc.mergedUnits} units merged, ${failedUnits.size} failed`);
      publishing = (async () => {
        // offers still queued from an earlier run need no second copy (the dedupe window would
        // drop it too, but only for its duration)
        const queued = created.resumed ? await queuedOffers(jsm, jobId).catch(() => undefined) : undefined;
        if (queued && queued.size > 0) log(`${queued.size} units still queued from before`);
        const todo: typeof units = [];
        for (const u of units) {
          if (ledger.isClosed(u.id)) continue;
          const q = queued?.get(u.id);
          if (q) for (const r of q) ledger.offered(u.id, r);
          // never answered: its first offer; answered but open: flushReoffers picks a fresh round
          else if (!ledger.known(u.id)) todo.push(u);
        }
        // recorded before publishing: a result may come back before the publish is acked
        for (const u of todo) ledger.offered(u.id, 0);
        return publishUnits(js, job, todo, created.maxAttempts, isStopping, log);
      })().then(
        (n) => {
          publishedUnits += n;
          offersReady = true;
          log(`published ${n} units to ${workSubject(jobId)}`);
          flushReoffers();
        },
        (e) => {
          if (!isStopping()) log(`publishing units failed: ${errText(e)}`);
        },
      );
    };


    // ---- further offers: replicas, second opinions on disputes, retries on other workers
    const waitingNoted = new Set<string>();
    let offering = false;
    flushReoffers = () => {
      if (!offersReady || offering || isStopping() || isDone()) return;
      // right after a start, heartbeats may not have been heard yet: do not mistake that for no workers
      if (heartbeats.size === 0 && Date.now() - t0 < 6000) return;
      const todo = ledger.needingOffer(merger.unitIds);
      if (todo.length === 0) return;
      const now = Date.now();
      const live = [...heartbeats].filter(([w, t]) => now - t <= liveWindow && !draining.has(w)).map(([w]) => w);
      const offers: { u: (typeof units)[number]; round: number; exclude: string[]; open: boolean }[] = [];
      for (const id of todo) {
        if (ledger.rounds(id) >= merger.maxRounds) {
          merger.giveUp(id);
          continue;
        }
        const spoken = ledger.spoken(id);
        const others = live.filter((w) => !spoken.includes(w));
        if (others.length > 0) {
          offers.push({ u: unitById.get(id)!, round: ledger.nextRound(id), exclude: spoken, open: false });
        } else if (!ledger.hasVotes(id) && live.length > 0) {
          // only workers that failed it are left: let them try once more; a second failure is final
          offers.push({ u: unitById.get(id)!, round: ledger.nextRound(id), exclude: [], open: true });
        } else if (!waitingNoted.has(id)) {
          waitingNoted.add(id);
          log(`unit ${id} waits for a worker other than ${spoken.join(', ')} to ${ledger.hasVotes(id) ? 'check its counts' : 'try it'}`);
        }
      }
      if (offers.length === 0) return;
      for (const o of offers) ledger.offered(o.u.id, o.round, o.open);
      offering = true;
      void Promise.all(offers.map((o) => publishReoffer(js, job, o.u, created.maxAttempts, o.round, o.exclude, isStopping, log)))
        .then(
          () => {
            publishedUnits += offers.length;
            reoffers += offers.length;
          },
          (e) => {
            if (!isStopping()) log(`offering units again failed: ${errText(e)}`);
          },
        )
        .finally(() => {
          offering = false;
        });
    };
    let reoffers = 0;

    if (replayTotal === 0) startPublishing();
    let consumer = await js.consumers.get(RESULTS_STREAM, consumerName);
    while (!isDone() && !isStopping()) {
      const messages = await retrying('consuming results', () => consumer.consume({ max_messages: 512, expires: 2000 }), isStopping, log);
      stopConsuming = () => messages.stop();
      if (isStopping()) messages.stop();
      try {
        for await (const m of messages) {
          seen++;
          merger.handle(m.subject, m.seq, m.data);
          m.ack();
          if (merger.replaying && (seen >= replayTotal || m.info.pending === 0)) startPublishing();
          if (isDone()) break;
          if (m.info.pending === 0) flushReoffers();
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
    if (merger.replaying) {
      resumedUnits = merger.settled;
      resumedImages = merger.imagesComplete;
    }
    await publishing;
    hbSub.unsubscribe();
    ctlSub.unsubscribe();
    for (const t of timers) clearInterval(t);
    timers.length = 0;

    const wallSeconds = (Date.now() - t0) / 1000;
    const alarms = ledger.alarmList();
    const unitWorkers = merger.unitWorkers();
    const result: CoordinatorResult = {
      jobId,
      job,
      state: isDone() ? 'done' : cancelled ? 'cancelled' : 'stopped',
      accumulator: acc,
      unitsTotal: units.length,
      unitSize: created.unitSize,
      failedUnits: [...failedUnits.values()].sort((a, b) => a.unitId.localeCompare(b.unitId)),
      failedImages: merger.failedImages(),
      rejected,
      duplicates: merger.duplicates,
      resumedUnits,
      publishedUnits,
      wallSeconds,
      ablationsRun: merger.ablationsRun,
      runs: merger.runs(),
      workers: merger.workers(),
      alarms,
      flagged: alarms.length > 0,
      unitWorkers,
      ablationsComputed: merger.ablationsComputed,
      totalWallSeconds: priorWall + wallSeconds,
      totalAblationsRun: priorAblations + merger.ablationsRun,
    };
    if (reoffers > 0) log(`${reoffers} further offers made (replicas, second opinions, retries elsewhere)`);
    if (result.state === 'cancelled') {
      log(`job ${jobId} cancelled: ${cancelReason}`);
      // `cancel` under an operator role that may not purge leaves this to the coordinator
      await jsm.streams.purge(WORK_STREAM, { filter: workSubject(jobId) }).catch(() => {});
      await jsm.streams.purge(RESULTS_STREAM, { filter: jobResultsSubjects(jobId) }).catch(() => {});
      await purgeAttempts(nc, jobId).catch(() => {});
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
        // over every run of the job: a resumed or retried job's figures are its whole cost
        wallSeconds: result.totalWallSeconds,
        ablationsRun: result.totalAblationsRun,
        workers: result.workers.length,
        resumedImages,
        runs: result.runs,
        alarms,
        unitWorkers,
        replicate: created.replicate,
        ablationsComputed: merger.ablationsComputed,
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
    // a job with failed units keeps its results: running it again retries exactly those units
    if (!opts.keepResults && failedUnits.size === 0) {
      await retrying('purging the results', () => jsm.streams.purge(RESULTS_STREAM, { filter: jobResultsSubjects(jobId) }), () => nc.isClosed(), log);
    }
    await retrying('dropping the attempt counters', () => purgeAttempts(nc, jobId), () => nc.isClosed(), log);
    try {
      await jsm.consumers.delete(RESULTS_STREAM, consumerName);
    } catch {
      // gone already
    }
    log(`job ${jobId} done: ${acc.mergedUnits}/${units.length} units merged, ${failedUnits.size} failed, ${rejected.length} messages rejected, ${merger.duplicates} duplicates ignored, ${alarms.length} alarm(s)`);
    if (alarms.length > 0) {
      const out = ledger.outvoted();
      log(`job ${jobId} FLAGGED: workers disagreed on ${alarms.length} unit(s)${out.length ? `; outvoted: ${out.join(', ')}` : ''} (summary.json "alarms" lists them)`);
    }
    return result;
  } finally {
    for (const t of timers) clearInterval(t);
    opts.signal?.removeEventListener('abort', onAbort);
    if (!opts.connection) await nc.close().catch(() => {});
  }
}

export { MalformedMessageError };
