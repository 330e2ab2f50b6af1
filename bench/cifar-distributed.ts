// Distributed vs single-node certify on CIFAR-10 (JPEG q75 copy in ../shared/datasets): the same
// model and images certified once by single-node certify and then over NATS with 1, 2 and 4
// worker processes; checks images.jsonl and certified.csv are byte-identical and reports wall
// time and ablations/s of each run. Not an ava test (minutes of CPU):
//
//   node dist/bench/cifar-distributed.js --model models/cifar10-column4 [--limit 2000]
//        [--workers 1,2,4] [--threads 2] [--data DIR] [--json FILE]
//
// --threads is the total inference threads, split between the workers of a run.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { jobAblations } from '../core/index.js';
import { certifyLocal } from '../pipeline/certify-local.js';
import { runCoordinator } from '../coordinator/coordinator.js';
import { prepareJob } from '../pipeline/prepare-job.js';
import { waitWorkersLive } from '../lab/wait.js';
import { NatsServer } from '../lab/nats-server.js';
import { SHARED_DATASETS } from '../lab/paths.js';
import { Procs } from '../lab/procs.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    limit: { type: 'string', default: '2000' },
    workers: { type: 'string', default: '1,2,4' },
    threads: { type: 'string', default: String(cpus().length) },
    'unit-images': { type: 'string' },
    json: { type: 'string' },
    work: { type: 'string', default: join(tmpdir(), 'patchcert-cifar-bench') },
    // reuse the single-node outputs already in --work (same model, data and limit)
    'reuse-single': { type: 'boolean' },
  },
});
if (!a.model) throw new Error('--model DIR (a CIFAR-10 model folder with model.manifest.json) is required');
const limit = Number(a.limit);
const threads = Number(a.threads);
const work = resolve(a.work!);
mkdirSync(work, { recursive: true });

function cifarTest(): string {
  if (a.data) return resolve(a.data);
  const dir = join(work, 'cifar10');
  if (!existsSync(join(dir, 'test'))) {
    mkdirSync(dir, { recursive: true });
    execFileSync('tar', ['xzf', join(SHARED_DATASETS, 'cifar10-jpeg', 'test.tar.gz'), '-C', dir]);
  }
  return join(dir, 'test');
}

const data = { format: 'imagefolder' as const, path: cifarTest(), limit };
const model = resolve(a.model);
const log = (s: string) => process.stderr.write(`${s}\n`);

interface Row {
  run: string;
  workers: number;
  wallSeconds: number;
  ablationsPerSecond: number;
  identical: boolean | null;
}
const rows: Row[] = [];

const prepared = await prepareJob({ model, data, backend: 'onnx' });
const K = jobAblations(prepared.job);
const total = prepared.job.dataset.images * K;
log(`job: ${prepared.job.dataset.images} images x ${K} ablations = ${total} forward passes; model ${prepared.job.model.name} (${prepared.job.model.sha256.slice(0, 12)}…)`);

// single node
const singleOut = join(work, 'single');
let t0 = performance.now();
let wall: number;
if (a['reuse-single'] && existsSync(join(singleOut, 'summary.json'))) {
  const s = JSON.parse(readFileSync(join(singleOut, 'summary.json'), 'utf8'));
  if (s.job.model.sha256 !== prepared.job.model.sha256 || s.images !== prepared.job.dataset.images) throw new Error(`${singleOut} holds another job`);
  wall = s.run.wallSeconds;
  log(`single-node: reusing ${singleOut} (${wall.toFixed(1)} s)`);
} else {
  await certifyLocal({ model, data, backend: 'onnx', out: singleOut, threads, prepThreads: 1, fresh: true });
  wall = (performance.now() - t0) / 1000;
  log(`single-node: ${wall.toFixed(1)} s`);
}
rows.push({ run: 'single-node certify', workers: 1, wallSeconds: wall, ablationsPerSecond: total / wall, identical: null });
const want = { images: readFileSync(join(singleOut, 'images.jsonl')), csv: readFileSync(join(singleOut, 'certified.csv')) };

const server = await NatsServer.start();
const procs = new Procs();
try {
  for (const n of a.workers!.split(',').map(Number)) {
    const per = Math.max(1, Math.floor(threads / n));
    const ids = Array.from({ length: n }, (_, i) => `bench-w${n}-${i}`);
    const ws = ids.map((id) =>
      procs.cli(id, ['worker', '--nats', server.url, '--worker-id', id, '--backend', 'onnx', '--threads', String(per), '--prep-threads', '1', '--concurrency', '2', '--quiet']),
    );
    await waitWorkersLive([server.url], ids, 60_000);
    const out = join(work, `dist-${n}`);
    const job = { ...prepared.job, jobId: `${prepared.job.jobId}-bench-${n}-${Date.now() % 100000}` };
    t0 = performance.now();
    const r = await runCoordinator({
      servers: server.url,
      job,
      output: { dir: out, items: prepared.dataset.items },
      ...(a['unit-images'] ? { unitImages: Number(a['unit-images']) } : {}),
      ackWaitMs: 120_000,
      log,
    });
    wall = (performance.now() - t0) / 1000;
    const identical = r.state === 'done' && readFileSync(join(out, 'images.jsonl')).equals(want.images) && readFileSync(join(out, 'certified.csv')).equals(want.csv);
    rows.push({ run: `NATS, ${n} worker${n > 1 ? 's' : ''} x ${per} thread${per > 1 ? 's' : ''}`, workers: n, wallSeconds: wall, ablationsPerSecond: total / wall, identical });
    log(`${n} worker(s): ${wall.toFixed(1)} s, ${r.unitsTotal} units, identical=${identical}`);
    for (const w of ws) {
      if (!w.running) log(`worker ${w.name} had exited before the end of the run: ${JSON.stringify(w.child.exitCode ?? w.child.signalCode)}`);
      w.kill('SIGTERM');
    }
    await Promise.all(ws.map((w) => w.waitExit(60_000)));
    for (const w of ws) writeFileSync(join(work, `${w.name}.log`), w.output());
  }
} finally {
  await procs.cleanup();
  await server.cleanup();
}

const table = [
  `| run | wall (s) | ablations/s | images.jsonl + certified.csv identical to single-node |`,
  `|---|---:|---:|---|`,
  ...rows.map((r) => `| ${r.run} | ${r.wallSeconds.toFixed(1)} | ${r.ablationsPerSecond.toFixed(0)} | ${r.identical === null ? '(reference)' : r.identical ? 'yes' : 'NO'} |`),
].join('\n');
process.stdout.write(`${prepared.job.dataset.images} CIFAR-10 test images (JPEG q75 copy), ${K} ablations each, model ${prepared.job.model.name}, onnx backend, ${threads} threads in all, ${cpus().length} CPUs\n\n${table}\n`);
if (a.json) writeFileSync(a.json, JSON.stringify({ images: prepared.job.dataset.images, ablations: K, model: prepared.job.model, threads, rows }, null, 2));
process.exit(rows.every((r) => r.identical !== false) ? 0 : 1);
