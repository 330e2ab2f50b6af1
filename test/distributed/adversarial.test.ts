// A hostile worker beside honest ones, through the CLI. With --replicate 1 its forged votes and
// made-up failures change nothing: the outputs are byte-identical to single-node certify, the
// forgery is an alarm naming it, and the coordinator exits 4 (flagged).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { certifyLocal } from '../../pipeline/certify-local.js';
import { RESULTS_STREAM, resultsSubject } from '../../cluster/layout.js';
import { distSetup, waitFor, waitWorkersLive } from '../helpers/dist-harness.js';
import { FIXTURE_MODELS } from '../../lab/paths.js';
import { FORGER_MAIN } from '../../lab/procs.js';
import { writeTinyGrayIdx } from '../helpers/tiny-data.js';
import type { UnitAlarm } from '../../core/index.js';

const TINY_GRAY = join(FIXTURE_MODELS, 'tiny-gray');

test('replicate 1: a worker forging votes and failures beside two honest ones changes no certificate; it is named, the job flagged (exit 4)', async (t) => {
  const d = await distSetup(t, { images: 1 });
  const data = join(d.dir, 'data');
  await writeTinyGrayIdx(data, 24);
  const common = ['--model', TINY_GRAY, '--data', data, '--thresholds', '0.3,0.6', '--backend', 'onnx', '--tile-images', '3', '--tile-ablations', '4'];
  const single = await certifyLocal({
    model: TINY_GRAY, data: { format: 'idx', path: data }, rules: [0.3, 0.6], out: join(d.dir, 'single'),
    backend: 'onnx', threads: 1, prepThreads: 1, tile: { images: 3, ablations: 4 }, unitImages: 6,
  });
  const nats = d.servers.join(',');
  const jobId = `adversarial-${process.pid}`;
  // the forger has the queue to itself at first, so that it surely lies about some units
  const forger = d.procs.spawnNode('forger', FORGER_MAIN, { NATS_URL: nats, WORKER_ID: 'forger' });
  await waitWorkersLive(d.servers, ['forger']);
  const out = join(d.dir, 'dist');
  const c = d.procs.cli('coordinator', ['coordinator', '--nats', nats, ...common, '--unit-images', '3', '--replicate', '1', '--job-id', jobId, '--out', out, '--quiet']);
  const nc = await connect({ servers: d.servers });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await waitFor('the forger answered a forged vote and a forged failure', async () => {
    try {
      return (await jsm.streams.info(RESULTS_STREAM, { subjects_filter: resultsSubject(jobId, 'forger') })).state.messages >= 2;
    } catch {
      return false;
    }
  }, 60_000);
  const workerArgs = ['worker', '--nats', nats, '--backend', 'onnx', '--threads', '1', '--prep-threads', '1', '--concurrency', '1'];
  const honest = ['w1', 'w2'].map((id) => d.procs.cli(id, [...workerArgs, '--worker-id', id]));

  const exit = await c.waitExit(180_000);
  t.is(exit.code, 4, c.output());
  t.deepEqual(await readFile(join(out, 'images.jsonl')), await readFile(single.files.images), 'images.jsonl identical to single-node certify');
  t.deepEqual(await readFile(join(out, 'certified.csv')), await readFile(single.files.csv), 'certified.csv identical');
  const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as { alarms: UnitAlarm[]; failedUnits: unknown[]; failedImages: unknown[]; run: { replicate: number; unitWorkers: Record<string, string[]> } };
  t.deepEqual(summary.failedUnits, [], 'made-up failures failed no unit');
  t.deepEqual(summary.failedImages, []);
  t.is(summary.run.replicate, 1);
  t.true(summary.alarms.length >= 1, 'the forged votes raised alarms');
  for (const a of summary.alarms) {
    t.true(a.votes.some((v) => v.workerId === 'forger'), JSON.stringify(a));
    t.is(a.status, 'resolved');
    t.deepEqual(a.outvoted, ['forger']);
  }
  // every unit holds two honest workers' equal counts, none of the forger's
  const units = Object.entries(summary.run.unitWorkers);
  t.is(units.length, 8);
  for (const [u, ws] of units) {
    t.is(ws.length, 2, u);
    t.false(ws.includes('forger'), u);
  }
  t.regex(c.output(), /ALARM unit \S+: workers returned different counts \(.*forger=.*\); resolved, outvoted: forger/);
  const last = c.output().trim().split('\n').pop()!;
  t.log(last);
  t.regex(last, /^8\/8 units certified, 0 failed; 24\/24 images certified, 0 failed; \d+ alarms \(job flagged\)$/);
  // status names the alarms too
  const st = d.procs.cli('status', ['status', jobId, '--nats', nats]);
  t.is((await st.waitExit(30_000)).code, 0);
  t.regex(st.output(), /ALARMS \(workers disagreed\): .*forger/);
  for (const w of [...honest, forger]) w.kill('SIGTERM');
  for (const w of honest) t.is((await w.waitExit(20_000)).code, 0, w.output());
});
