// Who said what about each unit, and when a unit's counts may be believed.
//
// Counts are deterministic for a model on one backend and device kind, so two honest workers
// return byte-equal counts for a unit. The ledger compares results by a digest of their counts
// (and failed image positions), one vote per worker:
// - a plain unit is settled by its first result; a replicated unit (a deterministic fraction of
//   the job, see isReplicated) needs two distinct workers that agree;
// - a result that differs from another worker's makes the unit disputed: it leaves the totals,
//   an alarm names both workers, and the unit is settled only when two distinct workers agree
//   (and no other digest has as many);
// - a failure report is evidence about its worker: a unit fails for good only when two distinct
//   workers failed it, or its one worker failed it again on an open offer (one made without
//   exclusions because no other worker was live), or it went through maxRounds offers.
// No I/O: the result merger feeds it, the coordinator publishes the offers it asks for.
import { createHash } from 'node:crypto';
import type { FailedUnitRecord, UnitAlarm } from '../cluster/jobs.js';

export interface LedgerVote<P> {
  workerId: string;
  digest: string;
  payload: P;
}

interface UnitEntry<P> {
  votes: LedgerVote<P>[];
  failures: Map<string, FailedUnitRecord>;
  /** digest whose counts are in the totals */
  settled?: string;
  disputed: boolean;
  final?: FailedUnitRecord;
  /** highest offer round seen (published, answered or queued) */
  maxRound: number;
  /** offers published and not answered yet */
  offersOut: Set<number>;
  /** offers made without exclusions (no other worker was live) */
  openRounds: Set<number>;
}

export type LedgerChange<P> =
  | { type: 'none' }
  | { type: 'settle'; payload: P; previous?: P }
  | { type: 'unsettle'; previous: P }
  | { type: 'fail'; record: FailedUnitRecord; previous?: P };

/** Digest of a result: its counts, rule by rule, and the sorted positions of its failed images. */
export function countsDigest(counts: readonly Int32Array[], failedPositions: readonly number[]): string {
  const h = createHash('sha256');
  for (const c of counts) {
    h.update(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
    h.update('|');
  }
  h.update([...failedPositions].sort((a, b) => a - b).join(','));
  return h.digest('hex');
}

/** Whether a unit is among the replicated fraction: by hash, so every coordinator run agrees. */
export function isReplicated(jobId: string, unitId: string, fraction: number): boolean {
  if (fraction >= 1) return true;
  if (fraction <= 0) return false;
  const h = createHash('sha256').update(`${jobId}/${unitId}`).digest();
  return h.readUInt32BE(0) / 2 ** 32 < fraction;
}

export class UnitLedger<P> {
  private readonly units = new Map<string, UnitEntry<P>>();
  readonly alarms = new Map<string, UnitAlarm>();

  constructor(
    private readonly replicated: (unitId: string) => boolean,
    private readonly maxRounds: number,
  ) {}

  private entry(unitId: string): UnitEntry<P> {
    let e = this.units.get(unitId);
    if (!e) {
      e = { votes: [], failures: new Map(), disputed: false, maxRound: 0, offersOut: new Set(), openRounds: new Set() };
      this.units.set(unitId, e);
    }
    return e;
  }

  /** How many distinct workers must agree before the unit's counts count. */
  need(unitId: string): number {
    const e = this.units.get(unitId);
    return this.replicated(unitId) || e?.disputed ? 2 : 1;
  }

  isSettled(unitId: string): boolean {
    return this.units.get(unitId)?.settled !== undefined;
  }

  finalFailure(unitId: string): FailedUnitRecord | undefined {
    return this.units.get(unitId)?.final;
  }

  isClosed(unitId: string): boolean {
    const e = this.units.get(unitId);
    return e !== undefined && (e.settled !== undefined || e.final !== undefined);
  }

  /** The accepted result of a settled unit and the workers that agreed on it. */
  accepted(unitId: string): { payload: P; workers: string[] } | undefined {
    const e = this.units.get(unitId);
    if (!e?.settled) return undefined;
    const agree = e.votes.filter((v) => v.digest === e.settled);
    return { payload: agree[0]!.payload, workers: agree.map((v) => v.workerId).sort() };
  }

  /** Workers that voted on or failed the unit: a further offer must go to someone else. */
  spoken(unitId: string): string[] {
    const e = this.units.get(unitId);
    if (!e) return [];
    return [...new Set([...e.votes.map((v) => v.workerId), ...e.failures.keys()])].sort();
  }

  /** Whether anything was heard or offered about the unit. */
  known(unitId: string): boolean {
    return this.units.has(unitId);
  }

  hasVotes(unitId: string): boolean {
    return (this.units.get(unitId)?.votes.length ?? 0) > 0;
  }

  /** Records an offer as published (or found queued). */
  offered(unitId: string, round: number, open = false): void {
    const e = this.entry(unitId);
    e.offersOut.add(round);
    if (open) e.openRounds.add(round);
    e.maxRound = Math.max(e.maxRound, round);
  }

  nextRound(unitId: string): number {
    return this.entry(unitId).maxRound + 1;
  }

  /** Offers made beyond the first. */
  rounds(unitId: string): number {
    return this.units.get(unitId)?.maxRound ?? 0;
  }

  /** Units that are neither settled nor failed and have no offer out: they need one. */
  needingOffer(unitIds: Iterable<string>): string[] {
    const out: string[] = [];
    for (const id of unitIds) {
      const e = this.units.get(id);
      if (e && e.settled === undefined && e.final === undefined && e.offersOut.size === 0) out.push(id);
    }
    return out;
  }

  /** An offer answered by a result that is not used (an earlier run's failure). */
  answer(unitId: string, round: number): void {
    this.answered(this.entry(unitId), round);
  }

  /** Ends a unit that reached maxRounds offers without an answer that settles it. */
  giveUp(unitId: string): LedgerChange<P> | undefined {
    const e = this.units.get(unitId);
    if (!e || e.settled !== undefined || e.final !== undefined) return undefined;
    return this.checkRounds(unitId, e);
  }

  private answered(e: UnitEntry<P>, round: number): void {
    e.offersOut.delete(round);
    e.maxRound = Math.max(e.maxRound, round);
  }

  /** A result for the unit. `duplicate` when this worker had said exactly this already. */
  vote(unitId: string, v: LedgerVote<P>, round: number): LedgerChange<P> | 'duplicate' {
    const e = this.entry(unitId);
    this.answered(e, round);
    const mine = e.votes.find((x) => x.workerId === v.workerId);
    if (mine) {
      if (mine.digest === v.digest) return 'duplicate';
      // one worker, two answers: it is not deterministic (or not honest); keep its first, and
      // let two other workers decide
      e.disputed = true;
      this.raise(unitId, e, [...e.votes, v]);
      return this.evaluate(unitId, e);
    }
    e.votes.push(v);
    if (new Set(e.votes.map((x) => x.digest)).size > 1) {
      e.disputed = true;
      this.raise(unitId, e, e.votes);
    }
    return this.evaluate(unitId, e);
  }

  /** A failure report for the unit. */
  failure(unitId: string, f: FailedUnitRecord, round: number): LedgerChange<P> | 'overruled' {
    const e = this.entry(unitId);
    this.answered(e, round);
    if (e.settled !== undefined || e.final !== undefined) return 'overruled';
    const again = e.failures.has(f.workerId);
    e.failures.set(f.workerId, f);
    const others = new Set(e.votes.map((x) => x.workerId));
    const failers = [...e.failures.keys()].filter((w) => !others.has(w));
    if (failers.length >= 2 || (again && e.openRounds.has(round))) {
      const names = failers.join(' and ');
      e.final = { ...f, error: failers.length >= 2 ? `${f.error} (failed on ${names})` : `${f.error} (failed again on ${f.workerId}, the only worker live)` };
      return { type: 'fail', record: e.final };
    }
    return this.checkRounds(unitId, e) ?? { type: 'none' };
  }

  /** Gives up on a unit that went through too many offers without agreement. */
  private checkRounds(unitId: string, e: UnitEntry<P>): LedgerChange<P> | undefined {
    if (e.maxRound < this.maxRounds || e.offersOut.size > 0) return undefined;
    const spoken = this.spoken(unitId);
    const f = [...e.failures.values()].pop();
    e.final = {
      unitId,
      error: e.votes.length > 1
        ? `no two workers agreed on its counts after ${e.maxRound + 1} offers (${spoken.join(', ')})`
        : `${f?.error ?? 'no result'} (after ${e.maxRound + 1} offers to ${spoken.join(', ') || 'no worker'})`,
      attempts: f?.attempts ?? 0,
      kind: e.votes.length > 1 ? 'disputed' : (f?.kind ?? 'error'),
      workerId: f?.workerId ?? spoken[0] ?? '',
    };
    const alarm = this.alarms.get(unitId);
    if (alarm) alarm.status = 'failed';
    return { type: 'fail', record: e.final };
  }

  private raise(unitId: string, e: UnitEntry<P>, votes: LedgerVote<P>[]): void {
    const a: UnitAlarm = { unitId, votes: votes.map((x) => ({ workerId: x.workerId, digest: x.digest })), status: 'open' };
    this.alarms.set(unitId, a);
    void e;
  }

  private evaluate(unitId: string, e: UnitEntry<P>): LedgerChange<P> {
    const groups = new Map<string, number>();
    for (const x of e.votes) groups.set(x.digest, (groups.get(x.digest) ?? 0) + 1);
    let best: string | undefined;
    let bestN = 0;
    let tie = false;
    for (const [d, n] of groups) {
      if (n > bestN) {
        best = d;
        bestN = n;
        tie = false;
      } else if (n === bestN) tie = true;
    }
    const previous = e.settled !== undefined ? e.votes.find((x) => x.digest === e.settled)!.payload : undefined;
    const alarm = this.alarms.get(unitId);
    if (best !== undefined && !tie && bestN >= this.need(unitId)) {
      if (alarm) {
        alarm.status = 'resolved';
        alarm.outvoted = [...new Set(e.votes.filter((x) => x.digest !== best).map((x) => x.workerId))].sort();
        alarm.votes = e.votes.map((x) => ({ workerId: x.workerId, digest: x.digest }));
      }
      const wasFinal = e.final !== undefined;
      e.final = undefined;
      if (e.settled === best && !wasFinal) return { type: 'none' };
      e.settled = best;
      const payload = e.votes.find((x) => x.digest === best)!.payload;
      return previous !== undefined ? { type: 'settle', payload, previous } : { type: 'settle', payload };
    }
    if (alarm && alarm.status === 'resolved') alarm.status = 'open';
    e.settled = undefined;
    const gaveUp = this.checkRounds(unitId, e);
    if (gaveUp && gaveUp.type === 'fail') return previous !== undefined ? { ...gaveUp, previous } : gaveUp;
    return previous !== undefined ? { type: 'unsettle', previous } : { type: 'none' };
  }

  /** Units whose results disagreed, for status and the summary. */
  alarmList(): UnitAlarm[] {
    return [...this.alarms.values()].sort((a, b) => a.unitId.localeCompare(b.unitId));
  }

  /** Every worker named on the losing side of an alarm. */
  outvoted(): string[] {
    const s = new Set<string>();
    for (const a of this.alarms.values()) for (const w of a.outvoted ?? []) s.add(w);
    return [...s].sort();
  }
}
