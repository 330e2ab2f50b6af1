// Merging the workers' results of one job: each unit's partial votes are added exactly once,
// failure reports recorded, and a message that is malformed or does not belong to the job's plan
// is rejected (reported, counted nowhere). No I/O: the coordinator feeds it what it consumes.
import { type ImageFailure, type JobSpec, type RunInfo, type WorkUnit, VoteAccumulator, jobAblations } from '../core/index.js';
import { decodeResult } from '../proto/index.js';
import type { FailedUnitRecord } from '../cluster/jobs.js';
import { canonicalJson } from './job-record.js';
import { errText } from './retry.js';

export interface RejectedMessage {
  subject: string;
  seq: number;
  error: string;
}

export class ResultMerger {
  readonly acc: VoteAccumulator;
  readonly failedUnits = new Map<string, FailedUnitRecord>();
  readonly failedImages = new Map<number, ImageFailure>();
  readonly rejected: RejectedMessage[] = [];
  /** backends, devices and versions that computed the merged counts, by canonical JSON */
  readonly runs = new Map<string, RunInfo>();
  /** ids of the workers whose results were merged */
  readonly workers = new Set<string>();
  /** results for units already merged (redeliveries, duplicates, late workers) */
  duplicates = 0;
  /** ablations merged in all, and during this run (not replayed from the stream) */
  ablationsDone = 0;
  ablationsRun = 0;
  imagesComplete = 0;
  /** while true, merged results are replayed ones (a resumed job's) */
  replaying = true;
  private readonly jobId: string;
  private readonly planned: Map<string, WorkUnit>;

  constructor(private readonly job: JobSpec, units: readonly WorkUnit[], private readonly log: (s: string) => void) {
    this.jobId = job.jobId;
    this.acc = new VoteAccumulator(job.dataset.images, jobAblations(job), job.numClasses, job.rules.length);
    this.planned = new Map(units.map((u) => [u.id, u]));
  }

  /** Units merged or reported failed. */
  get settled(): number {
    return this.acc.mergedUnits + this.failedUnits.size;
  }

  /** Takes one message of the job's results subject. */
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
      if (this.acc.has(f.unitId) || this.failedUnits.has(f.unitId)) {
        this.duplicates++;
        return;
      }
      this.failedUnits.set(f.unitId, { unitId: f.unitId, error: f.error, attempts: f.attempt, kind: f.kind, workerId: f.workerId });
      this.log(`unit ${f.unitId} failed after ${f.attempt} attempt(s) on ${f.workerId}: ${f.error}`);
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
    if (this.acc.has(v.unitId)) {
      this.duplicates++;
      return;
    }
    const span = v.range.ablEnd - v.range.ablStart;
    for (const f of v.failures) {
      if (f.position < v.range.imgStart || f.position >= v.range.imgEnd) {
        this.rejected.push({ subject, seq, error: `malformed message on ${subject}: unit ${v.unitId} reports a failed image outside the unit` });
        return;
      }
    }
    try {
      this.acc.merge({ ...v.range, counts: v.counts });
    } catch (e) {
      this.rejected.push({ subject, seq, error: `malformed message on ${subject}: ${errText(e)}` });
      this.log(`rejected result #${seq}: ${errText(e)}`);
      return;
    }
    // a late success supersedes an earlier failure report of the same unit
    this.failedUnits.delete(v.unitId);
    for (const f of v.failures) this.failedImages.set(f.position, { position: f.position, index: f.index, source: f.source, error: f.error });
    const n = v.range.imgEnd - v.range.imgStart;
    this.ablationsDone += n * span;
    if (!this.replaying) this.ablationsRun += n * span;
    for (let i = v.range.imgStart; i < v.range.imgEnd; i++) if (this.acc.isImageComplete(i)) this.imagesComplete++;
    const run: RunInfo = { backend: v.backend, device: v.device, versions: v.versions };
    this.runs.set(canonicalJson(run), run);
    this.workers.add(v.workerId);
  }
}
