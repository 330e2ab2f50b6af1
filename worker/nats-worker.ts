// The NATS worker: pulls work units from JetStream, runs them with a UnitExecutor, publishes the
// partial votes to the results stream and only then acks.
//
// - one executor per job, built by the ExecutorFactory from the job spec in the PATCHCERT_JOBS
//   bucket (the factory pins the model sha256; when it cannot, every unit of that job is refused
//   with a failure report naming the reason, and terminated);
// - the model comes from the shared path in the job spec, else from the PATCHCERT_MODELS object
//   store into a local cache;
// - `concurrency` units in flight, each kept alive with msg.working() every ackWait/3;
// - a unit whose executor throws is naked with a growing delay, and after its job's
//   max_attempts reported failed (kind "error") and terminated; a unit on which max_attempts
//   attempts started without any report (workers killed or partitioned on it) is reported failed
//   (kind "lost"). Attempts are counted in the job bucket when they start, not by JetStream
//   deliveries: a delivery lost on its way (a pull that expired while this process was busy)
//   costs only the ack wait, never an attempt;
// - SIGTERM/SIGINT (or the abort signal): stop pulling, let in-flight units finish for up to
//   `drainTimeoutMs`, release (nak) the rest, close the executors, drain the connection.
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Consumer, type JsMsg, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { type UnitRange, isTileAligned, jobAblations } from '../core/index.js';
import {
  type UnitFailureKind,
  decodeCancel,
  decodeWorkUnit,
  encodeHeartbeat,
  encodePartialVotes,
  encodeUnitFailure,
  WORKER_ID,
  jobIdOfSubject,
} from '../proto/index.js';
import { InvalidJobSpecError, startAttempt } from '../cluster/jobs.js';
import { type NatsConnectOptions, connectNats } from '../cluster/connect.js';
import { HEARTBEAT_SUBJECT, PUBLISH_TIMEOUT_MS, WORK_CONSUMER, WORK_STREAM, jobsKv, resultMsgId, resultsSubject } from '../cluster/layout.js';
import { type JobContext, JobContexts, TransientError } from './job-contexts.js';
import { checkResult } from './result-check.js';
import type { ExecutorFactory, UnitExecutor, UnitResult } from './unit-types.js';

export interface WorkerOptions extends NatsConnectOptions {
  executorFactory: ExecutorFactory;
  /** units in flight at once (default 1) */
  concurrency?: number;
  /** default "<host>-<pid>" */
  workerId?: string;
  /** where models fetched from the object store are kept (default <tmp>/patchcert-models) */
  modelCacheDir?: string;
  heartbeatIntervalMs?: number;
  /** first nak delay after a failed attempt; doubles with each attempt (default 1000 ms) */
  retryDelayMs?: number;
  /** on drain, how long in-flight units may run before they are released (default: the ack wait) */
  drainTimeoutMs?: number;
  /** how long one pull for a unit waits (default 10 s; the server allows at least 1 s) */
  pullExpiresMs?: number;
  /** drain on SIGTERM and SIGINT (default true) */
  handleSignals?: boolean;
  /**
   * Stop pulling after this many failed attempts in a row (default 3): a worker that cannot run
   * units (data or model missing, backend broken, out of memory) then leaves them to others
   * instead of burning their attempts. 0 never stops.
   */
  maxFailuresInARow?: number;
  /** aborting drains the worker */
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** use this connection instead of opening one (it is not closed) */
  connection?: NatsConnection;
}

export interface WorkerStats {
  workerId: string;
  unitsDone: number;
  /** failure reports published (bad units, units that failed their last attempt, refused units) */
  unitsFailed: number;
  /** units given back to the queue (failed attempts with retries left, drain) */
  unitsReleased: number;
  /** set when the worker stopped on its own: too many failures in a row */
  stoppedReason?: string;
}

interface InFlight {
  key: string;
  jobId: string;
  abort: AbortController;
}

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** How long one pull waits for a unit (the server ends it then; the client 5% later). */
const PULL_EXPIRES_MS = 10_000;

// Unref: a pending back-off or drain deadline must not keep a finished worker process alive.
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** A re-offer's results need message ids of their own (the first offer's are in the dedupe window). */
const roundKind = (kind: string, round: number): string => (round === 0 ? kind : `${kind}.r${round}`);

/** "<host>-<pid>", with what a subject token cannot hold (dots of a FQDN, ...) made "_". */
export function defaultWorkerId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48) || 'worker';
  return `${host}-${process.pid}`;
}

/** Runs a worker until drained (SIGTERM/SIGINT or the abort signal); resolves with its totals. */
export async function runWorker(opts: WorkerOptions): Promise<WorkerStats> {
  const workerId = opts.workerId ?? defaultWorkerId();
  if (!WORKER_ID.test(workerId)) throw new Error(`invalid worker id ${JSON.stringify(workerId)} (1 to 64 letters, digits, _ and - only: it is a NATS subject token)`);
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 1));
  const log = opts.log ?? ((s: string) => process.stderr.write(`[worker ${workerId}] ${s}\n`));
  const cacheDir = opts.modelCacheDir ?? join(tmpdir(), 'patchcert-models');
  const retryDelay = opts.retryDelayMs ?? 1000;
  const pullExpires = Math.max(1000, opts.pullExpiresMs ?? PULL_EXPIRES_MS);
  const stats: WorkerStats = { workerId, unitsDone: 0, unitsFailed: 0, unitsReleased: 0 };
  const startedAt = Date.now();
  const maxFailuresInARow = opts.maxFailuresInARow ?? 3;
  /** units that failed here since the last success (distinct: one poison unit is not a pattern) */
  const failedInARow = new Set<string>();

  let draining = false;
  /** set when in-flight work had its drain time: pending publishes give up */
  let drainExpired = false;
  let wakeDrain: () => void = () => {};
  const drained = new Promise<void>((r) => (wakeDrain = r));
  const startDrain = (why: string) => {
    if (draining) return;
    draining = true;
    log(`draining (${why})`);
    wakeDrain();
  };
  // Attempts that failed here, whatever their cause: a run of them says more about this worker
  // than about the units, so it stops and says why.
  const failedAttemptHere = (unitKey: string, why: string) => {
    failedInARow.add(unitKey);
    if (maxFailuresInARow > 0 && failedInARow.size >= maxFailuresInARow && !stats.stoppedReason) {
      stats.stoppedReason = `${failedInARow.size} units failed in a row on this worker (last: ${why}); it stopped pulling so that other workers take them`;
      log(stats.stoppedReason);
      startDrain('too many failures in a row');
    }
  };
  const onSignal = (sig: NodeJS.Signals) => startDrain(sig);
  if (opts.handleSignals !== false) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  const onAbort = () => startDrain('abort signal');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) draining = true;

  // its own reply inboxes, so per-worker permissions can keep other workers' replies from it
  const inboxPrefix = opts.inboxPrefix ?? (process.env.NATS_INBOX_PREFIX || `_INBOX.worker.${workerId}`);
  const nc = opts.connection ?? (await connectNats({ name: `patchcert worker ${workerId}`, ...opts, inboxPrefix }));
  void nc.closed().then(() => startDrain('connection closed'));
  const js = jetstream(nc);
  const inFlight = new Map<string, InFlight>();
  const timers: NodeJS.Timeout[] = [];

  const publishDurably = async (subject: string, data: Uint8Array, msgID: string, giveUp: () => boolean): Promise<void> => {
    for (let i = 0; ; i++) {
      try {
        await js.publish(subject, data, { msgID, timeout: PUBLISH_TIMEOUT_MS });
        return;
      } catch (e) {
        if (giveUp() || nc.isClosed()) throw e;
        if (i % 10 === 2) log(`publishing to ${subject}: ${errText(e)} (retrying)`);
        await sleep(Math.min(2000, 100 * 2 ** Math.min(i, 5)));
      }
    }
  };

  const reportFailure = async (jobId: string, unitId: string, range: UnitRange | undefined, kind: UnitFailureKind, error: string, attempt: number, round = 0): Promise<void> => {
    const data = encodeUnitFailure({ jobId, unitId, ...(range ? { range } : {}), error, workerId, attempt, kind, round });
    await publishDurably(resultsSubject(jobId, workerId), data, resultMsgId(jobId, unitId, workerId, attempt, roundKind(kind, round)), () => drainExpired);
    stats.unitsFailed++;
  };

  const kv = await (async () => {
    for (let i = 0; ; i++) {
      try {
        return await jobsKv(nc, { bindOnly: true });
      } catch (e) {
        if (draining || nc.isClosed()) return undefined;
        if (i % 20 === 5) log(`waiting for the ${'PATCHCERT_JOBS'} bucket: ${errText(e)}`);
        await sleep(500);
      }
    }
  })();
  const jobs = new JobContexts(nc, kv, opts.executorFactory, cacheDir, log);

  // cancellation: abort the job's units in flight; they are terminated, not retried
  const ctlSub = nc.subscribe('patchcert.control.*', {
    callback: (err, m) => {
      if (err) return;
      try {
        const c = decodeCancel(m.data, m.subject, jobIdOfSubject(m.subject));
        const ctx = jobs.peek(c.jobId);
        if (ctx) ctx.cancelled = true;
        for (const f of inFlight.values()) if (f.jobId === c.jobId) f.abort.abort(new Error(`job ${c.jobId} cancelled`));
        log(`job ${c.jobId} cancelled: ${c.reason}`);
      } catch (e) {
        log(errText(e));
      }
    },
  });

  const heartbeat = () => {
    try {
      nc.publish(
        HEARTBEAT_SUBJECT,
        encodeHeartbeat({
          workerId,
          host: hostname(),
          backend: jobs.lastBackend,
          device: jobs.lastDevice,
          concurrency,
          inFlight: [...inFlight.keys()],
          unitsDone: stats.unitsDone,
          unitsFailed: stats.unitsFailed,
          startedAtMs: startedAt,
          sentAtMs: Date.now(),
          state: draining ? 'draining' : 'running',
        }),
      );
    } catch {
      // disconnected: the next beat will do
    }
  };

  let ackWaitMs = 30_000;
  const handle = async (m: JsMsg): Promise<void> => {
    const subject = m.subject;
    const subjectJob = jobIdOfSubject(subject);
    let unit;
    try {
      unit = decodeWorkUnit(m.data, subject, subjectJob);
    } catch (e) {
      log(errText(e));
      if (subjectJob) await reportFailure(subjectJob, '', undefined, 'malformed', errText(e), m.info.deliveryCount).catch(() => {});
      m.term();
      return;
    }
    const { jobId, unitId, range } = unit;
    const round = unit.round ?? 0;
    if (unit.excludeWorkers?.includes(workerId)) {
      // a second opinion must come from another worker: leave it, without counting an attempt
      m.nak(Math.min(2000, retryDelay));
      return;
    }
    // until an attempt is counted (below), reports carry the delivery number
    let attempt = m.info.deliveryCount;
    if (draining) {
      m.nak();
      stats.unitsReleased++;
      return;
    }
    let ctx: JobContext | undefined;
    try {
      ctx = await jobs.get(jobId);
    } catch (e) {
      if (e instanceof InvalidJobSpecError) {
        await reportFailure(jobId, unitId, range, 'job', `job ${jobId}: ${errText(e)}`, attempt);
        m.term();
      } else {
        // could not read it (server restarting, ...): try again later
        log(`reading job ${jobId}: ${errText(e)} (unit released)`);
        m.nak(retryDelay);
        stats.unitsReleased++;
      }
      return;
    }
    if (!ctx) {
      await reportFailure(jobId, unitId, range, 'job', `job ${jobId} has no spec in the PATCHCERT_JOBS bucket`, attempt);
      m.term();
      return;
    }
    if (ctx.cancelled) {
      m.term();
      return;
    }
    const job = ctx.job;
    if (unit.modelSha256 !== job.model.sha256) {
      await reportFailure(jobId, unitId, range, 'malformed', `unit ${unitId} names model ${unit.modelSha256}, but job ${jobId} pins ${job.model.sha256}`, attempt, round);
      m.term();
      return;
    }
    if (!isTileAligned(range, job.tile, job.dataset.images, jobAblations(job))) {
      await reportFailure(jobId, unitId, range, 'malformed', `unit ${unitId} does not lie on job ${jobId}'s tile grid`, attempt, round);
      m.term();
      return;
    }
    let started: number;
    try {
      started = await startAttempt(kv!, jobId, unitId, unit.maxAttempts, round);
    } catch (e) {
      log(`counting an attempt on ${jobId}/${unitId}: ${errText(e)} (unit released)`);
      m.nak(retryDelay);
      stats.unitsReleased++;
      return;
    }
    if (started > unit.maxAttempts) {
      await reportFailure(jobId, unitId, range, 'lost', `no result after ${unit.maxAttempts} attempts (each worker died, timed out or lost the network on this unit)`, unit.maxAttempts, round);
      m.term();
      return;
    }
    attempt = unit.attempt - 1 + started;
    if (m.info.deliveryCount > 1) log(`unit ${jobId}/${unitId}: delivery ${m.info.deliveryCount}, attempt ${started} of ${unit.maxAttempts}`);
    ctx.inFlight++;
    const key = round === 0 ? `${jobId}/${unitId}` : `${jobId}/${unitId}/r${round}`;
    const abort = new AbortController();
    inFlight.set(key, { key, jobId, abort });
    const keepAlive = setInterval(() => m.working(), Math.max(100, Math.floor(ackWaitMs / 3)));
    try {
      let executor: UnitExecutor;
      try {
        ctx.executor ??= jobs.buildExecutor(job);
        executor = await ctx.executor;
      } catch (e) {
        if (e instanceof TransientError) {
          // the model could not be fetched just now: forget the failure, release the unit
          ctx.executor = undefined;
          log(`${errText(e)} (unit released)`);
          m.nak(retryDelay);
          stats.unitsReleased++;
          return;
        }
        // most likely this worker's own fault (model or data not where it looks, backend that does
        // not start). Say so to the coordinator: its ledger counts the failure against this worker and
        // offers the unit to others; it is final only when another worker (or this one, when no other
        // is live) fails it too.
        ctx.executor = undefined;
        const why = `worker ${workerId} cannot run job ${jobId}: ${errText(e)}`;
        failedAttemptHere(key, why);
        await reportFailure(jobId, unitId, range, 'model', why, attempt, round);
        m.term();
        return;
      }
      let data: Uint8Array;
      try {
        const result: UnitResult = await executor.execute(range, abort.signal);
        checkResult(job, range, result);
        data = encodePartialVotes({
          jobId,
          unitId,
          range,
          counts: result.counts,
          failures: result.failures,
          workerId,
          backend: result.backend,
          device: result.device,
          versions: result.versions,
          timings: { preprocessMs: result.preprocessMs, inferenceMs: result.inferenceMs, totalMs: result.totalMs },
          attempt,
          modelSha256: job.model.sha256,
          round,
        });
        const max = nc.info?.max_payload;
        if (max !== undefined && data.length > max) {
          throw new Error(`the result of unit ${unitId} takes ${data.length} bytes, over the server's max_payload of ${max}: use smaller units`);
        }
      } catch (e) {
        if (abort.signal.aborted) {
          if (ctx.cancelled) m.term();
          else {
            m.nak();
            stats.unitsReleased++;
          }
          return;
        }
        failedAttemptHere(key, errText(e));
        if (attempt >= unit.maxAttempts) {
          log(`unit ${key} failed on its last attempt (${attempt}): ${errText(e)}`);
          await reportFailure(jobId, unitId, range, 'error', errText(e), attempt, round);
          m.term();
        } else {
          log(`unit ${key} attempt ${attempt} failed: ${errText(e)} (retrying)`);
          m.nak(retryDelay * 2 ** (attempt - 1));
          stats.unitsReleased++;
        }
        return;
      }
      try {
        await publishDurably(resultsSubject(jobId, workerId), data, resultMsgId(jobId, unitId, workerId, attempt, roundKind('votes', round)), () => abort.signal.aborted || drainExpired);
      } catch (e) {
        log(`could not publish the result of ${key}: ${errText(e)}; releasing it`);
        m.nak();
        stats.unitsReleased++;
        return;
      }
      // only now: the result is stored, the unit may leave the queue
      m.ack();
      stats.unitsDone++;
      failedInARow.clear();
    } finally {
      clearInterval(keepAlive);
      inFlight.delete(key);
      ctx.inFlight--;
    }
  };

  /** units being handled, from receipt to ack/nak/term */
  const busy = new Set<Promise<void>>();
  const slot = async (consumer: Consumer): Promise<void> => {
    while (!draining && !nc.isClosed()) {
      let m: JsMsg | null;
      const asked = Date.now();
      try {
        // a long pull: a message that reaches a pull already expired on this side is dropped by
        // the client and comes back only after the ack wait, and the sooner a pull expires, the
        // likelier that is while a backend call holds the event loop
        m = await consumer.next({ expires: pullExpires });
      } catch (e) {
        if (draining || nc.isClosed()) return;
        await sleep(500);
        continue;
      }
      if (!m) {
        // next() gives null at once while the server is away or the consumer is gone: back off
        // instead of spinning the event loop until it returns.
        if (Date.now() - asked < 1000) await Promise.race([sleep(500), drained]);
        continue;
      }
      const msg = m;
      const p = handle(msg).catch((e) => {
        // a failure to report (server gone for good): give the unit back
        log(`unit on ${msg.subject}: ${errText(e)}`);
        try {
          msg.nak();
        } catch {
          // connection closed: JetStream redelivers after the ack wait
        }
      });
      busy.add(p);
      await p;
      busy.delete(p);
    }
  };

  try {
    heartbeat();
    timers.push(setInterval(heartbeat, opts.heartbeatIntervalMs ?? 5000));
    let consumer: Consumer | undefined;
    for (let i = 0; !draining && !nc.isClosed(); i++) {
      try {
        consumer = await js.consumers.get(WORK_STREAM, WORK_CONSUMER);
        ackWaitMs = Math.round(((await consumer.info(true)).config.ack_wait ?? 30e9) / 1e6);
        break;
      } catch (e) {
        if (i % 20 === 5) log(`waiting for the work queue: ${errText(e)}`);
        await Promise.race([sleep(500), drained]);
      }
    }
    if (consumer && !draining) {
      log(`pulling units (concurrency ${concurrency}, ack wait ${ackWaitMs} ms)`);
      for (let i = 0; i < concurrency; i++) void slot(consumer);
      await drained;
      const drainTimeout = opts.drainTimeoutMs ?? ackWaitMs;
      // wait for the units being handled, not for idle pulls (those end with the connection)
      const finished = (async () => {
        while (busy.size > 0) await Promise.allSettled([...busy]);
      })();
      const timedOut = await Promise.race([finished.then(() => false), sleep(drainTimeout).then(() => true)]);
      if (timedOut) {
        drainExpired = true;
        log(`releasing ${inFlight.size} unit(s) still running after ${drainTimeout} ms`);
        for (const f of inFlight.values()) f.abort.abort(new Error('worker draining'));
        await finished;
      }
    }
  } finally {
    for (const t of timers) clearInterval(t);
    draining = true;
    heartbeat();
    ctlSub.unsubscribe();
    await jobs.closeAll();
    if (opts.handleSignals !== false) {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
    opts.signal?.removeEventListener('abort', onAbort);
    // drain fails while the server is away; close then, or reconnect attempts keep the process alive
    if (!opts.connection) await nc.drain().catch(() => nc.close()).catch(() => {});
  }
  log(`drained: ${stats.unitsDone} units done, ${stats.unitsFailed} failure reports, ${stats.unitsReleased} released`);
  return stats;
}
