// Merging the workers' results of one job: a message that is malformed or does not belong to the
// job's plan is rejected (reported, counted nowhere); the rest go through the unit ledger, which
// decides when a unit's counts may enter the totals (and when they must leave them again, for a
// disputed unit). Each unit's counts are in the totals at most once. No I/O: the coordinator
// feeds it what it consumes and publishes the offers it asks for.
import { type ImageFailure, type JobSpec, type RunInfo, type UnitRange, type WorkUnit, VoteAccumulator, jobAblations } from '../core/index.js';
import { decodeResult } from '../proto/index.js';
import type { FailedUnitRecord } from '../cluster/jobs.js';
import { canonicalJson } from './job-record.js';
import { errText } from './retry.js';
import { type LedgerChange, UnitLedger, countsDigest, isReplicated } from './unit-ledger.js';

export interface RejectedMessage {
  subject: string;
  seq: number;
  error: string;
}

export interface MergerPolicy {
  /** fraction of units that need two agreeing workers (0..1) */
  replicate?: number;
  /** offers of one unit before it is given up (default 4) */
  maxRounds?: number;
  /** failure reports stored before this stream sequence are an earlier run's: retried, not final */
  ignoreFailuresBeforeSeq?: number;
}

/** One worker's result for a unit, as the ledger keeps it. */
interface VotePayload extends UnitRange {
  counts: Int32Array[];
  failures: ImageFailure[];
  run: RunInfo;
  workerId: string;
  /** computed during this coordinator's run (not replayed from the stream) */
  live: boolean;
}

export class ResultMerger {
  readonly acc: VoteAccumulator;
  readonly ledger: UnitLedger<VotePayload>;
  readonly failedUnits = new Map<string, FailedUnitRecord>();
  readonly rejected: RejectedMessage[] = [];
  /** results a worker sent twice, and failure reports for units already settled */
  duplicates = 0;
  /** ablations in the totals, and those of them computed during this run */
  ablationsDone = 0;
  ablationsRun = 0;
  /** ablations computed during this run, counting replicas and recomputations (the real cost) */
  ablationsComputed = 0;
  imagesComplete = 0;
  /** while true, merged results are replayed ones (a resumed job's) */
  replaying = true;
  private readonly jobId: string;
  private readonly planned: Map<string, WorkUnit>;
  private readonly ignoreBefore: number;
  readonly maxRounds: number;

  constructor(private readonly job: JobSpec, units: readonly WorkUnit[], private readonly log: (s: string) => void, policy: MergerPolicy = {}) {
    this.jobId = job.jobId;
    this.acc = new VoteAccumulator(job.dataset.images, jobAblations(job), job.numClasses, job.rules.length);
    this.planned = new Map(units.map((u) => [u.id, u]));
    const fraction = policy.replicate ?? 0;
    this.maxRounds = policy.maxRounds ?? 4;
    this.ledger = new UnitLedger((id) => isReplicated(this.jobId, id, fraction), this.maxRounds);
    this.ignoreBefore = policy.ignoreFailuresBeforeSeq ?? 0;
  }

  /** Units settled (counts in the totals) or failed for good. */
  get settled(): number {
    return this.acc.mergedUnits + this.failedUnits.size;
  }

  get unitIds(): Iterable<string> {
    return this.planned.keys();
  }

  /** Takes one message of the job's results subjects. */
  handle(subject: string, seq: number, data: Uint8Array): void {
    let body;
    try {
      body = decodeResult(data, subject, this.jobId);
    } catch (e) {
      this.rejected.push({ subject, seq, error: errText(e) });
      this.log(`rejected result #${seq}: ${errText(e)}`);
      return;
    }
    if (body.type === 'failure') {
      const f = body.failure;
      if (f.unitId === '') {
        this.rejected.push({ subject, seq, error: `worker ${f.workerId} refused a work message: ${f.error}` });
        this.log(`worker ${f.workerId} refused a work message: ${f.error}`);
        return;
      }
      if (!this.planned.has(f.unitId)) {
        this.rejected.push({ subject, seq, error: `refused message on ${subject}: failure report for unit ${f.unitId}, which is not a unit of job ${this.jobId}'s plan` });
        return;
      }
      // an earlier run's verdict: that run gave up on the unit, this one tries again (with a
      // fresh round, so the new offer's message ids are not deduped against the old ones)
      if (seq < this.ignoreBefore) {
        this.ledger.offered(f.unitId, f.round ?? 0);
        this.ledger.answer(f.unitId, f.round ?? 0);
        return;
      }
      const record: FailedUnitRecord = { unitId: f.unitId, error: f.error, attempts: f.attempt, kind: f.kind, workerId: f.workerId };
      const change = this.ledger.failure(f.unitId, record, f.round ?? 0);
      if (change === 'overruled') {
        this.duplicates++;
        return;
      }
      if (change.type === 'none') this.log(`unit ${f.unitId} failed on ${f.workerId} (${f.error}); offering it to another worker`);
      this.apply(f.unitId, change);
      return;
    }
    const v = body.votes;
    if (!this.planned.has(v.unitId)) {
      this.rejected.push({ subject, seq, error: `refused message on ${subject}: votes for unit ${v.unitId}, which is not a unit of job ${this.jobId}'s plan` });
      return;
    }
    if (v.modelSha256 !== this.job.model.sha256) {
      this.rejected.push({ subject, seq, error: `refused message on ${subject}: votes for unit ${v.unitId} from worker ${v.workerId} were computed with model ${v.modelSha256}, not the job's ${this.job.model.sha256}` });
      return;
    }
    const payload: VotePayload = {
      ...v.range,
      counts: v.counts,
      failures: v.failures.map((f) => ({ position: f.position, index: f.index, source: f.source, error: f.error })),
      run: { backend: v.backend, device: v.device, versions: v.versions },
      workerId: v.workerId,
      live: !this.replaying,
    };
    try {
      this.acc.validate(payload);
    } catch (e) {
      this.rejected.push({ subject, seq, error: `malformed message on ${subject}: ${errText(e)}` });
      this.log(`rejected result #${seq}: ${errText(e)}`);
      return;
    }
    const digest = countsDigest(v.counts, v.failures.map((f) => f.position));
    const change = this.ledger.vote(v.unitId, { workerId: v.workerId, digest, payload }, v.round ?? 0);
    if (change === 'duplicate') {
      this.duplicates++;
      return;
    }
    if (payload.live) this.ablationsComputed += (v.range.imgEnd - v.range.imgStart) * (v.range.ablEnd - v.range.ablStart);
    const alarm = this.ledger.alarms.get(v.unitId);
    if (alarm && alarm.votes.some((x) => x.workerId === v.workerId && x.digest === digest)) {
      if (alarm.status === 'resolved') this.log(`unit ${v.unitId}: ${this.ledger.accepted(v.unitId)!.workers.join(' and ')} agree; outvoted: ${alarm.outvoted!.join(', ')}`);
      else this.log(`ALARM unit ${v.unitId}: workers disagree on its counts (${alarm.votes.map((x) => `${x.workerId} ${x.digest.slice(0, 12)}`).join(', ')}); it leaves the totals until two workers agree`);
    }
    this.apply(v.unitId, change);
  }

  private apply(unitId: string, change: LedgerChange<VotePayload>): void {
    if (change.type === 'none') return;
    if (change.previous) this.take(change.previous, -1);
    if (change.type === 'settle') {
      this.failedUnits.delete(unitId);
      this.take(change.payload, 1);
    } else if (change.type === 'fail') {
      this.failedUnits.set(unitId, change.record);
      this.log(`unit ${unitId} failed for good: ${change.record.error}`);
    }
  }

  /** Adds (+1) or takes back (-1) a settled result's counts and figures. */
  private take(p: VotePayload, sign: 1 | -1): void {
    const n = p.imgEnd - p.imgStart;
    const abl = n * (p.ablEnd - p.ablStart);
    if (sign < 0) {
      for (let i = p.imgStart; i < p.imgEnd; i++) if (this.acc.isImageComplete(i)) this.imagesComplete--;
      this.acc.unmerge(p);
    } else {
      this.acc.merge(p);
      for (let i = p.imgStart; i < p.imgEnd; i++) if (this.acc.isImageComplete(i)) this.imagesComplete++;
    }
    this.ablationsDone += sign * abl;
    if (p.live) this.ablationsRun += sign * abl;
  }

  /** Gives up on a unit offered too often (see UnitLedger.giveUp). */
  giveUp(unitId: string): void {
    const change = this.ledger.giveUp(unitId);
    if (change) this.apply(unitId, change);
  }

  /** Failed images of the settled units, by position. */
  failedImages(): ImageFailure[] {
    const out: ImageFailure[] = [];
    for (const id of this.planned.keys()) for (const f of this.ledger.accepted(id)?.payload.failures ?? []) out.push(f);
    return out.sort((a, b) => a.position - b.position);
  }

  /** Backends, devices and versions that computed the counts in the totals. */
  runs(): RunInfo[] {
    const m = new Map<string, RunInfo>();
    for (const id of this.planned.keys()) {
      const a = this.ledger.accepted(id);
      if (a) m.set(canonicalJson(a.payload.run), a.payload.run);
    }
    return [...m.values()];
  }

  /** For each settled unit, the workers whose (equal) counts it holds. */
  unitWorkers(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const id of [...this.planned.keys()].sort()) {
      const a = this.ledger.accepted(id);
      if (a) out[id] = a.workers;
    }
    return out;
  }

  /** Ids of the workers whose counts are in the totals. */
  workers(): string[] {
    const s = new Set<string>();
    for (const ws of Object.values(this.unitWorkers())) for (const w of ws) s.add(w);
    return [...s].sort();
  }
}
