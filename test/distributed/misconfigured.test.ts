// Workers that cannot run a job (an empty --data-root), through the CLI: beside a healthy worker
// they cost nothing; alone, the units fail, and running the same command again once a healthy
// worker is there retries exactly those units. Outputs are byte-identical to single-node certify.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { certifyLocal } from '../../pipeline/certify-local.js';
import { distSetup, waitWorkersLive } from '../helpers/dist-harness.js';
import { FIXTURE_MODELS } from '../../lab/paths.js';
import { writeTinyGrayIdx } from '../helpers/tiny-data.js';

const TINY_GRAY = join(FIXTURE_MODELS, 'tiny-gray');

async function setup(t: Parameters<typeof distSetup>[0]) {
  const d = await distSetup(t, { images: 1 });
  const data = join(d.dir, 'data');
  await writeTinyGrayIdx(data, 24);
  const empty = join(d.dir, 'empty-root');
  await mkdir(empty);
  const common = ['--model', TINY_GRAY, '--data', data, '--thresholds', '0.3', '--backend', 'onnx', '--tile-images', '3', '--tile-ablations', '4'];
  const single = await certifyLocal({
    model: TINY_GRAY, data: { format: 'idx', path: data }, rules: [0.3], out: join(d.dir, 'single'),
    backend: 'onnx', threads: 1, prepThreads: 1, tile: { images: 3, ablations: 4 }, unitImages: 6,
  });
  const nats = d.servers.join(',');
  const workerArgs = ['worker', '--nats', nats, '--backend', 'onnx', '--threads', '1', '--prep-threads', '1', '--concurrency', '1'];
  return { d, nats, common, single, empty, workerArgs };
}

test('a worker with an empty --data-root beside a healthy one: every unit certified by the healthy one; the bad one stops itself (exit 2)', async (t) => {
  const { d, nats, common, single, empty, workerArgs } = await setup(t);
  const bad = d.procs.cli('bad', [...workerArgs, '--worker-id', 'bad', '--data-root', empty]);
  const good = d.procs.cli('good', [...workerArgs, '--worker-id', 'good']);
  await waitWorkersLive(d.servers, ['bad', 'good']);
  const out = join(d.dir, 'dist');
  const c = d.procs.cli('coordinator', ['coordinator', '--nats', nats, ...common, '--unit-images', '3', '--job-id', `misconf-${process.pid}`, '--out', out, '--quiet']);
  const exit = await c.waitExit(120_000);
  t.is(exit.code, 0, c.output());
  t.deepEqual(await readFile(join(out, 'images.jsonl')), await readFile(single.files.images));
  const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8'));
  t.deepEqual(summary.failedUnits, []);
  t.true(Object.values(summary.run.unitWorkers as Record<string, string[]>).every((ws) => ws.length === 1 && ws[0] === 'good'));
  t.regex(c.output().trim().split('\n').pop()!, /^8\/8 units certified, 0 failed; 24\/24 images certified, 0 failed; 0 alarms$/);
  // it fails at once where the healthy one takes a while: it meets 3 units before the job ends
  const b = await bad.waitExit(30_000);
  t.is(b.code, 2, bad.output());
  t.regex(bad.output(), /worker bad stopped: 3 units failed in a row on this worker \(last: worker bad cannot run job .*data set path not found: .*empty-root/);
  good.kill('SIGTERM');
  t.is((await good.waitExit(20_000)).code, 0);
});

test('a job whose units failed on a lone misconfigured worker: the same command, run again with a healthy worker, retries exactly those units', async (t) => {
  const { d, nats, common, single, empty, workerArgs } = await setup(t);
  const bad = d.procs.cli('bad', [...workerArgs, '--worker-id', 'bad', '--data-root', empty, '--max-failures-in-a-row', '0']);
  await waitWorkersLive(d.servers, ['bad']);
  const out = join(d.dir, 'dist');
  const args = ['coordinator', '--nats', nats, ...common, '--unit-images', '6', '--job-id', `retry-${process.pid}`, '--out', out, '--quiet'];
  const first = d.procs.cli('coordinator-1', args);
  t.is((await first.waitExit(120_000)).code, 2, first.output());
  t.regex(first.output(), /failed unit i0-6\.a0-8 after \d attempt\(s\) on bad: worker bad cannot run job/);
  t.regex(first.output().trim().split('\n').pop()!, /^0\/4 units certified, 4 failed; 0\/24 images certified, 24 failed; 0 alarms$/);
  bad.kill('SIGTERM');
  await bad.waitExit(20_000);
  d.procs.cli('good', [...workerArgs, '--worker-id', 'good']);
  const second = d.procs.cli('coordinator-2', args);
  t.is((await second.waitExit(120_000)).code, 0, second.output());
  t.deepEqual(await readFile(join(out, 'images.jsonl')), await readFile(single.files.images), 'the retried job equals single-node certify');
  const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8'));
  t.deepEqual(summary.failedUnits, []);
  t.true(Object.values(summary.run.unitWorkers as Record<string, string[]>).every((ws) => ws.join() === 'good'));
  t.regex(second.output().trim().split('\n').pop()!, /^4\/4 units certified, 0 failed; 24\/24 images certified, 0 failed; 0 alarms$/);
});
