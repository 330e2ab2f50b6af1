// What a worker checks of an executor's result before publishing it: a wrong shape would poison
// the coordinator's merge.
import type { JobSpec, UnitRange } from '../core/index.js';
import type { UnitResult } from './unit-types.js';

/** Checks an executor's result before it is published: a wrong shape would poison the merge. */
export function checkResult(job: JobSpec, unit: UnitRange, r: UnitResult): void {
  const n = unit.imgEnd - unit.imgStart;
  const span = unit.ablEnd - unit.ablStart;
  if (r.unit.imgStart !== unit.imgStart || r.unit.imgEnd !== unit.imgEnd || r.unit.ablStart !== unit.ablStart || r.unit.ablEnd !== unit.ablEnd) {
    throw new Error('executor returned the result of a different unit');
  }
  if (r.counts.length !== job.rules.length) throw new Error(`executor returned counts for ${r.counts.length} rules, job has ${job.rules.length}`);
  for (const c of r.counts) {
    if (c.length !== n * job.numClasses) throw new Error(`executor returned ${c.length} counts, expected ${n} x ${job.numClasses}`);
    for (let i = 0; i < c.length; i++) if (c[i]! < 0 || c[i]! > span) throw new Error(`executor returned an impossible count ${c[i]}`);
  }
}
