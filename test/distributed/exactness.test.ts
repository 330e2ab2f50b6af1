// 1, 2 and 4 real worker processes, several unit sizes: the accumulated counts always equal one
// in-process pass over the whole job.
import test from 'ava';
import { jobAblations, planUnits } from '../../core/index.js';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { distSetup, waitFor, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';

const SIZES = [
  { unitImages: 2, unitAblations: 4 },
  { unitImages: 6, unitAblations: 8 },
  { unitImages: 4, unitAblations: 16 },
  {}, // default sizing
];

test('1, 2 and 4 workers give the in-process counts for every unit size', async (t) => {
  const d = await distSetup(t, { images: 22, width: 16, tile: { images: 2, ablations: 4 } });
  const want = countsDigest(expectedAccumulator(d.job));
  let workers = 0;
  for (const n of [1, 2, 4]) {
    while (workers < n) {
      d.procs.worker(d.servers, { workerId: `w${++workers}`, knobs: { delayMs: 20 } });
    }
    await waitWorkersLive(d.servers, d.procs.all.map((p) => p.name));
    let most = 0;
    for (const [i, size] of SIZES.entries()) {
      const job = { ...d.job, jobId: `${d.job.jobId}-n${n}-s${i}` };
      const r = await runCoordinator(d.coordOpts({ job, ...size }));
      t.is(r.state, 'done');
      t.deepEqual(r.failedUnits, []);
      t.deepEqual(r.rejected, []);
      t.is(countsDigest(r.accumulator), want, `${n} workers, unit size ${JSON.stringify(size)}`);
      t.is(r.accumulator.mergedUnits, planUnits(job.dataset.images, jobAblations(job), job.tile, r.unitSize).length);
      t.true(r.workers.length <= n);
      most = Math.max(most, r.workers.length);
      t.log(`${n} workers, size ${JSON.stringify(size)}: ${r.unitsTotal} units, merged from ${r.workers.join(",")}`);
    }
    t.is(most, n, `all ${n} workers shared some job`);
  }
  // every worker took part at some point, and all are still alive
  t.true(d.procs.all.every((p) => p.running));
  await waitFor('all workers', () => d.procs.all.length === 4);
});
