// Merging partial vote counts: integer addition, each unit counted exactly once.
import { type UnitRange, unitId } from './plan.js';

/** Counts of one unit: for each vote rule, (imgEnd - imgStart) x numClasses integers. */
export interface PartialVotes extends UnitRange {
  counts: Int32Array[];
}

export type MergeOutcome = 'merged' | 'duplicate';

/**
 * Accumulates partial votes for a job of `images` x `ablations`. Results are keyed by unit id:
 * a second result for the same unit (a redelivery, a stale worker) changes nothing.
 * Overlapping but different units are refused, since they would count ablations twice.
 */
export class VoteAccumulator {
  readonly counts: Int32Array[];
  /** ablations merged so far per image; an image is complete at `ablations` */
  readonly covered: Int32Array;
  private readonly done = new Set<string>();

  constructor(
    readonly images: number,
    readonly ablations: number,
    readonly numClasses: number,
    readonly numRules: number,
  ) {
    this.counts = Array.from({ length: numRules }, () => new Int32Array(images * numClasses));
    this.covered = new Int32Array(images);
  }

  has(id: string): boolean {
    return this.done.has(id);
  }

  get mergedUnits(): number {
    return this.done.size;
  }

  /** Throws unless `p` could be merged now (shape, range, counts within the span, no overlap). */
  validate(p: PartialVotes): void {
    const id = unitId(p);
    const n = p.imgEnd - p.imgStart;
    const span = p.ablEnd - p.ablStart;
    if (p.imgStart < 0 || p.imgEnd > this.images || n <= 0 || p.ablStart < 0 || p.ablEnd > this.ablations || span <= 0) {
      throw new Error(`partial votes for unit ${id} lie outside the job (${this.images} images x ${this.ablations} ablations)`);
    }
    if (p.counts.length !== this.numRules) throw new Error(`unit ${id} has counts for ${p.counts.length} vote rules, job has ${this.numRules}`);
    for (const c of p.counts) {
      if (c.length !== n * this.numClasses) throw new Error(`unit ${id} has ${c.length} counts, expected ${n} images x ${this.numClasses} classes`);
    }
    // A rule's counts for one image can never exceed ablations x classes, nor be negative.
    for (let i = 0; i < n; i++) {
      if (!this.done.has(id) && this.covered[p.imgStart + i]! + span > this.ablations) {
        throw new Error(`unit ${id} would count image ${p.imgStart + i} past its ${this.ablations} ablations (overlapping units)`);
      }
      for (const c of p.counts) {
        for (let k = 0; k < this.numClasses; k++) {
          const v = c[i * this.numClasses + k]!;
          if (v < 0 || v > span) throw new Error(`unit ${id} has an impossible count ${v} for image ${p.imgStart + i} (span ${span})`);
        }
      }
    }
  }

  merge(p: PartialVotes): MergeOutcome {
    if (this.done.has(unitId(p))) return 'duplicate';
    this.validate(p);
    this.add(p, 1);
    this.done.add(unitId(p));
    return 'merged';
  }

  /**
   * Takes back a merged unit's counts (the same `p` that was merged): a unit whose result is
   * disputed leaves the totals until workers agree on it. Integer subtraction, so exact.
   */
  unmerge(p: PartialVotes): void {
    const id = unitId(p);
    if (!this.done.has(id)) throw new Error(`unit ${id} was not merged`);
    this.add(p, -1);
    this.done.delete(id);
  }

  private add(p: PartialVotes, sign: 1 | -1): void {
    const n = p.imgEnd - p.imgStart;
    const span = p.ablEnd - p.ablStart;
    for (let r = 0; r < this.numRules; r++) {
      const dst = this.counts[r]!;
      const src = p.counts[r]!;
      const base = p.imgStart * this.numClasses;
      for (let j = 0; j < src.length; j++) dst[base + j]! += sign * src[j]!;
    }
    for (let i = 0; i < n; i++) this.covered[p.imgStart + i]! += sign * span;
  }

  isImageComplete(image: number): boolean {
    return this.covered[image] === this.ablations;
  }

  /** Count vector of one image for rule r (a view, not a copy). */
  imageCounts(rule: number, image: number): Int32Array {
    return this.counts[rule]!.subarray(image * this.numClasses, (image + 1) * this.numClasses);
  }
}
