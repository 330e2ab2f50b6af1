// Names and setup of everything patchcert keeps in NATS JetStream.
//
//   stream PATCHCERT_WORK     work queue, subjects patchcert.work.<jobId>; message id <jobId>/<unitId>
//     consumer patchcert-workers   the one durable pull consumer every worker shares (explicit ack)
//   stream PATCHCERT_RESULTS  limits, subjects patchcert.results.<jobId>.<workerId>: PartialVotes /
//                             UnitFailure, kept until the job finishes (a restarted coordinator
//                             replays them); the last token binds a result to its sender, since
//                             deploy/'s per-worker accounts may publish only on their own id
//     consumer patchcert-coord-<jobId>   the coordinator's, recreated (deliver all) at each start
//   KV bucket PATCHCERT_JOBS  <jobId>.spec (JobSpec message), <jobId>.state (JSON JobStateRecord),
//                             <jobId>.attempts.<unitId> (attempts started, written by workers)
//   object store PATCHCERT_MODELS  model files by sha256, for workers without the shared path
//   core subjects: patchcert.heartbeat (workers), patchcert.progress.<jobId> (coordinator),
//                  patchcert.control.<jobId> (Cancel)
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { type ObjectStore, Objm } from '@nats-io/obj';

export const WORK_STREAM = 'PATCHCERT_WORK';
export const RESULTS_STREAM = 'PATCHCERT_RESULTS';
export const WORK_CONSUMER = 'patchcert-workers';
export const JOBS_BUCKET = 'PATCHCERT_JOBS';
export const MODELS_BUCKET = 'PATCHCERT_MODELS';
export const HEARTBEAT_SUBJECT = 'patchcert.heartbeat';

export const workSubject = (jobId: string): string => `patchcert.work.${jobId}`;
/** where worker `workerId` publishes its results of job `jobId` */
export const resultsSubject = (jobId: string, workerId: string): string => `patchcert.results.${jobId}.${workerId}`;
/** every worker's results of one job (consumer filter, purge, counts) */
export const jobResultsSubjects = (jobId: string): string => `patchcert.results.${jobId}.*`;
export const progressSubject = (jobId: string): string => `patchcert.progress.${jobId}`;
export const controlSubject = (jobId: string): string => `patchcert.control.${jobId}`;
export const coordinatorConsumer = (jobId: string): string => `patchcert-coord-${jobId}`;
export const specKey = (jobId: string): string => `${jobId}.spec`;
export const stateKey = (jobId: string): string => `${jobId}.state`;
/** attempts started on a unit (a JetStream delivery lost in transit starts none) */
export const attemptsKey = (jobId: string, unitId: string, round = 0): string =>
  round === 0 ? `${jobId}.attempts.${unitId}` : `${jobId}.attempts.${unitId}.r${round}`;
/** a re-offer (round > 0) is a message of its own, never deduped against the first offer */
export const unitMsgId = (jobId: string, unitId: string, round = 0): string => (round === 0 ? `${jobId}/${unitId}` : `${jobId}/${unitId}/r${round}`);
export const resultMsgId = (jobId: string, unitId: string, workerId: string, attempt: number, kind: string): string =>
  `${jobId}/${unitId || '-'}/${kind}/${workerId}/${attempt}`;

export const DEFAULT_ACK_WAIT_MS = 30_000;
/**
 * How long a JetStream publish waits for its ack before it is sent again. Short, since a publish
 * caught by a server restart is never acked; re-sending is safe (message ids dedupe).
 */
export const PUBLISH_TIMEOUT_MS = 3000;
export const DEFAULT_DUPLICATE_WINDOW_MS = 60 * 60_000;

export interface LayoutOptions {
  /** stream replicas (3 on a JetStream cluster) */
  replicas?: number;
  /** how long a worker may hold a unit without a heartbeat before it is redelivered */
  ackWaitMs?: number;
  /** JetStream dedupe window of both streams */
  duplicateWindowMs?: number;
}

function isNotFound(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /not found/i.test(msg) || (e as { code?: string }).code === '404';
}

/** Creates (or updates) the streams and the shared worker consumer; idempotent. */
export async function ensureStreams(jsm: JetStreamManager, opts: LayoutOptions = {}): Promise<void> {
  const replicas = opts.replicas ?? 1;
  const dup = nanos(opts.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS);
  const streams = [
    { name: WORK_STREAM, subjects: ['patchcert.work.>'], retention: RetentionPolicy.Workqueue },
    { name: RESULTS_STREAM, subjects: ['patchcert.results.>'], retention: RetentionPolicy.Limits },
  ];
  for (const s of streams) {
    const cfg = {
      name: s.name,
      subjects: s.subjects,
      retention: s.retention,
      storage: StorageType.File,
      num_replicas: replicas,
      duplicate_window: dup,
      discard: DiscardPolicy.Old,
      // direct gets let a resuming coordinator list the units still queued (queuedUnitIds)
      allow_direct: true,
    };
    let info;
    try {
      info = await jsm.streams.info(s.name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (!info) {
      try {
        await jsm.streams.add(cfg);
      } catch (e) {
        // another coordinator may have created it meanwhile
        if (!/already in use|already exists/i.test(String(e))) throw e;
      }
    } else if (
      info.config.duplicate_window !== dup ||
      info.config.num_replicas !== replicas ||
      info.config.subjects?.join() !== s.subjects.join() ||
      info.config.allow_direct !== true
    ) {
      // only when it differs: a coordinator restricted to its job may lack the right to update
      await jsm.streams.update(s.name, { duplicate_window: dup, num_replicas: replicas, subjects: s.subjects, allow_direct: true });
    }
  }
  const ackWait = nanos(opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS);
  let existing;
  try {
    existing = await jsm.consumers.info(WORK_STREAM, WORK_CONSUMER);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  const consumerCfg = {
    durable_name: WORK_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: ackWait,
    filter_subject: 'patchcert.work.>',
    // attempts are counted by the workers (WorkUnit.max_attempts), so a crash-looping unit is
    // reported rather than silently parked by JetStream
    max_deliver: -1,
    max_ack_pending: 100_000,
    max_waiting: 4096,
  };
  if (!existing) {
    await jsm.consumers.add(WORK_STREAM, consumerCfg);
  } else if (existing.config.ack_wait !== ackWait) {
    await jsm.consumers.update(WORK_STREAM, WORK_CONSUMER, { ack_wait: ackWait });
  }
}

/**
 * The job's offers still in the work queue (published, not yet acked or terminated): unit id ->
 * rounds, read with direct gets; undefined when the server does not allow them (then rely on the
 * dedupe window).
 */
export async function queuedOffers(jsm: JetStreamManager, jobId: string): Promise<Map<string, number[]> | undefined> {
  const offers = new Map<string, number[]>();
  const prefix = `${jobId}/`;
  let seq = 1;
  for (;;) {
    let m;
    try {
      m = await jsm.direct.getMessage(WORK_STREAM, { seq, next_by_subj: workSubject(jobId) });
    } catch (e) {
      if (isNotFound(e) || /no message/i.test(String(e))) return offers;
      return undefined;
    }
    if (m === null) return offers; // past the last one
    const id = m.header.get('Nats-Msg-Id') || '';
    if (id.startsWith(prefix)) {
      // <jobId>/<unitId> (round 0) or <jobId>/<unitId>/r<round>
      const rest = id.slice(prefix.length);
      const r = /^(.*)\/r(\d+)$/.exec(rest);
      const unit = r ? r[1]! : rest;
      const list = offers.get(unit) ?? [];
      list.push(r ? Number(r[2]) : 0);
      offers.set(unit, list);
    }
    seq = m.seq + 1;
  }
}

/** Ids of the job's units with an offer still in the work queue (see queuedOffers). */
export async function queuedUnitIds(jsm: JetStreamManager, jobId: string): Promise<Set<string> | undefined> {
  const offers = await queuedOffers(jsm, jobId);
  return offers && new Set(offers.keys());
}

/** The shared worker consumer's ack wait, in milliseconds. */
export async function workAckWaitMs(jsm: JetStreamManager): Promise<number> {
  const ci = await jsm.consumers.info(WORK_STREAM, WORK_CONSUMER);
  return Math.round((ci.config.ack_wait ?? 30e9) / 1e6);
}

export async function jobsKv(nc: NatsConnection, opts: { replicas?: number; bindOnly?: boolean } = {}): Promise<KV> {
  const kvm = new Kvm(nc);
  return opts.bindOnly ? kvm.open(JOBS_BUCKET) : kvm.create(JOBS_BUCKET, { history: 1, replicas: opts.replicas ?? 1, storage: StorageType.File });
}

/** The models object store, created when missing. */
export async function modelsStore(nc: NatsConnection, opts: { replicas?: number } = {}): Promise<ObjectStore> {
  return new Objm(nc).create(MODELS_BUCKET, { replicas: opts.replicas ?? 1, storage: StorageType.File });
}
