// The real pipeline over NATS: `patchcert coordinator` (or `certify --nats`) and `patchcert worker` processes with the
// onnx backend and the piscina pool, on real files; images.jsonl and certified.csv are
// byte-identical to single-node certify of the same model and data, for 1 and 2 workers.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { certifyLocal } from '../../pipeline/certify-local.js';
import { distSetup } from '../helpers/dist-harness.js';
import { FIXTURE_MODELS } from '../../lab/paths.js';
import { writeTinyGrayIdx } from '../helpers/tiny-data.js';

const TINY_GRAY = join(FIXTURE_MODELS, 'tiny-gray');

test('coordinator + worker CLI processes: outputs byte-identical to single-node certify', async (t) => {
  const d = await distSetup(t, { images: 1 });
  const data = join(d.dir, 'data');
  await writeTinyGrayIdx(data, 45);
  const common = ['--model', TINY_GRAY, '--data', data, '--thresholds', '0.3,0.6', '--backend', 'onnx', '--tile-images', '3', '--tile-ablations', '4'];
  const single = await certifyLocal({
    model: TINY_GRAY,
    data: { format: 'idx', path: data },
    rules: [0.3, 0.6],
    out: join(d.dir, 'single'),
    backend: 'onnx',
    threads: 1,
    prepThreads: 1,
    tile: { images: 3, ablations: 4 },
    unitImages: 9,
  });
  const wanted = {
    images: await readFile(single.files.images),
    csv: await readFile(single.files.csv),
  };
  const nats = d.servers.join(',');
  const workerArgs = ['--nats', nats, '--backend', 'onnx', '--threads', '1', '--prep-threads', '1', '--concurrency', '1'];
  for (const [n, unit] of [[1, ['--unit-images', '6']], [2, ['--unit-images', '3', '--unit-ablations', '4']]] as const) {
    const workers = Array.from({ length: n }, (_, i) => d.procs.cli(`worker-${n}-${i}`, ['worker', ...workerArgs, '--worker-id', `w${n}-${i}`]));
    const out = join(d.dir, `dist-${n}`);
    // `patchcert coordinator ...`, and the same through `patchcert certify --nats URL ...`
    const cmd = n === 1 ? 'coordinator' : 'certify';
    const c = d.procs.cli(`${cmd}-${n}`, [cmd, '--nats', nats, ...common, ...unit, '--out', out, '--job-id', `${single.job.jobId}-${n}`, ...(n === 1 ? ['--ack-wait', '10'] : []), '--quiet']);
    const exit = await c.waitExit(120_000);
    t.is(exit.code, 0, c.output());
    t.deepEqual(await readFile(join(out, 'images.jsonl')), wanted.images, `${n} worker(s): images.jsonl identical`);
    t.deepEqual(await readFile(join(out, 'certified.csv')), wanted.csv, `${n} worker(s): certified.csv identical`);
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8'));
    t.is(summary.run.backends[0].backend, 'onnx');
    t.regex(c.output(), /results in /);
    t.true(c.output().includes(`job ${single.job.jobId}-${n} (patchcert status`), 'the job id is printed even with --quiet');
    for (const w of workers) w.kill('SIGTERM');
    for (const w of workers) t.is((await w.waitExit(20_000)).code, 0, w.output());
  }
});
