// A unit that always fails is retried maxAttempts times, then reported by id with its error; a
// unit that fails once is retried and counted; failed images are reported; the rest completes
// and the output files list the failures.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { distSetup, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';

test('an always-failing unit is reported by id with its error; the rest completes', async (t) => {
  const d = await distSetup(t, { images: 12 });
  const bad = 'i4-6.a0-16';
  const flaky = 'i8-10.a0-16';
  const marker = join(d.dir, 'flaky-failed');
  const knobs = { delayMs: 10, failUnit: bad, flakyUnit: flaky, flakyMarker: marker, failImages: [1, 10] };
  d.procs.worker(d.servers, { workerId: 'w1', knobs });
  d.procs.worker(d.servers, { workerId: 'w2', knobs });
  await waitWorkersLive(d.servers, ['w1', 'w2']);
  const items = Array.from({ length: 12 }, (_, i) => ({ index: 100 + i, label: i % 10, source: `fake/${i}.png` }));
  const outDir = join(d.dir, 'out');
  const r = await runCoordinator(d.coordOpts({ unitImages: 2, maxAttempts: 3, output: { dir: outDir, items } }));
  t.is(r.state, 'done');
  t.true(existsSync(marker), 'the flaky unit failed once');
  t.is(r.failedUnits.length, 1);
  const f = r.failedUnits[0]!;
  t.is(f.unitId, bad);
  t.is(f.kind, 'error');
  t.is(f.attempts, 3);
  t.regex(f.error, /fake model error on unit i4-6\.a0-16/);
  t.is(r.accumulator.mergedUnits, r.unitsTotal - 1);
  t.deepEqual(r.failedImages.map((x) => x.position), [1, 10]);
  // every unit but the failed one is counted exactly as in one pass
  const want = expectedAccumulator(d.job, [1, 10]);
  const C = d.job.numClasses;
  for (let rule = 0; rule < d.job.rules.length; rule++) {
    for (let img = 0; img < 12; img++) {
      const got = Array.from(r.accumulator.imageCounts(rule, img));
      if (img === 4 || img === 5) t.deepEqual(got, new Array(C).fill(0));
      else t.deepEqual(got, Array.from(want.imageCounts(rule, img)), `image ${img} rule ${rule}`);
    }
  }
  // outputs list the failed unit and images
  const summary = JSON.parse(readFileSync(join(outDir, 'summary.json'), 'utf8'));
  t.deepEqual(summary.failedUnits.map((u: { unitId: string }) => u.unitId), [bad]);
  t.deepEqual(summary.failedImages.map((x: { index: number }) => x.index).sort(), [101, 104, 105, 110]);
  const lines = readFileSync(join(outDir, 'images.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.is(lines.length, 12);
  t.regex(lines[4].error, /incomplete/);
  t.regex(lines[1].error, /corrupt image/);
  t.truthy(lines[0].results);
});
