// Comparable summaries of coordinator results.
import { createHash } from 'node:crypto';
import type { VoteAccumulator } from '../core/index.js';
import type { CoordinatorResult } from '../coordinator/coordinator.js';

/** sha256 over every rule's counts and the coverage: equal digests = identical accumulated counts. */
export function countsDigest(acc: VoteAccumulator): string {
  const h = createHash('sha256');
  for (const c of acc.counts) h.update(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
  h.update(new Uint8Array(acc.covered.buffer, acc.covered.byteOffset, acc.covered.byteLength));
  return h.digest('hex');
}

export interface ResultJson {
  state: string;
  digest: string;
  mergedUnits: number;
  unitsTotal: number;
  failedUnits: { unitId: string; error: string; kind: string; attempts: number }[];
  failedImages: { position: number; error: string }[];
  rejected: { subject: string; error: string }[];
  duplicates: number;
  resumedUnits: number;
  publishedUnits: number;
  workers: string[];
  wallSeconds: number;
}

export function resultToJson(r: CoordinatorResult): ResultJson {
  return {
    state: r.state,
    digest: countsDigest(r.accumulator),
    mergedUnits: r.accumulator.mergedUnits,
    unitsTotal: r.unitsTotal,
    failedUnits: r.failedUnits.map((f) => ({ unitId: f.unitId, error: f.error, kind: f.kind, attempts: f.attempts })),
    failedImages: r.failedImages.map((f) => ({ position: f.position, error: f.error })),
    rejected: r.rejected.map((x) => ({ subject: x.subject, error: x.error })),
    duplicates: r.duplicates,
    resumedUnits: r.resumedUnits,
    publishedUnits: r.publishedUnits,
    workers: r.workers,
    wallSeconds: r.wallSeconds,
  };
}
