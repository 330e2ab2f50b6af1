// The benchmarks' stand-in executor (bench/stand-in-executor.ts) is only useful if its merged
// counts can be checked exactly: any sharding over any workers must equal the direct computation.
// A correctness test, no timing.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import test from 'ava';
import { VoteAccumulator, jobAblations, planUnits } from '../../core/index.js';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { ensureStreams, jobsKv } from '../../cluster/layout.js';
import { runWorker } from '../../worker/nats-worker.js';
import { connect } from '@nats-io/transport-node';
import { makeStandInJob, sameCounts, standInCounts, standInExecutorFactory, standInExpected } from '../../lab/stand-in-executor.js';
import { NatsServer } from '../../lab/nats-server.js';

const WORKERS_MAIN = fileURLToPath(new URL('../../bench/stand-in-workers.js', import.meta.url));

test('stand-in counts do not depend on the sharding, and vote like argmax / threshold rules', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-standin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const job = makeStandInJob(dir, { jobId: 'standin-pure', images: 9, tile: { images: 1, ablations: 8 } });
  const K = jobAblations(job);
  const acc = new VoteAccumulator(9, K, job.numClasses, job.rules.length);
  for (const u of planUnits(9, K, job.tile, { images: 2, ablations: 8 })) acc.merge({ ...u, counts: standInCounts(job, u) });
  t.true(sameCounts(acc, standInExpected(job)));
  const whole = standInExpected(job);
  for (let i = 0; i < 9; i++) {
    const argmax = whole.imageCounts(0, i).reduce((s, v) => s + v, 0);
    t.is(argmax, K, 'rule 0 gives one vote per ablation');
    for (let r = 1; r < job.rules.length; r++) t.true(whole.imageCounts(r, i).every((v) => v >= 0 && v <= K));
  }
  // not a constant: the votes vary with the image and the rule
  t.notDeepEqual([...whole.imageCounts(0, 0)], [...whole.imageCounts(0, 1)]);
  t.notDeepEqual([...whole.imageCounts(1, 0)], [...whole.imageCounts(2, 0)]);
});

test('a job run by stand-in workers (one multi-worker process and one in-process worker) merges to the direct computation', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-standin-'));
  const server = await NatsServer.start();
  const stop = new AbortController();
  const child = spawn(process.execPath, [WORKERS_MAIN, '--nats', server.url, '--count', '3', '--prefix', 'multi-', '--unit-ms', '10'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const childExit = new Promise((res) => child.once('exit', res));
  t.teardown(async () => {
    stop.abort();
    child.kill('SIGKILL');
    await server.cleanup();
    await rm(dir, { recursive: true, force: true });
  });
  {
    const nc = await connect({ servers: server.url });
    await ensureStreams(await jetstreamManager(nc));
    await jobsKv(nc);
    await nc.close();
  }
  const inProc = runWorker({ servers: server.url, executorFactory: standInExecutorFactory({ unitMs: 5, busy: true }), workerId: 'inproc', handleSignals: false, signal: stop.signal, log: () => {} });
  const deadline = Date.now() + 20_000;
  while (!out.includes('ready 3')) {
    if (Date.now() > deadline || child.exitCode !== null) t.fail(`stand-in workers not ready: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const job = makeStandInJob(join(dir, 'model'), { jobId: 'standin-nats', images: 30, tile: { images: 2, ablations: 8 } });
  for (const size of [{ unitImages: 2, unitAblations: 8 }, { unitImages: 6, unitAblations: 32 }]) {
    const j = { ...job, jobId: `${job.jobId}-${size.unitImages}` };
    const r = await runCoordinator({ job: j, servers: server.url, uploadModel: false, progressIntervalMs: 200, ...size });
    t.is(r.state, 'done');
    t.deepEqual(r.failedUnits, []);
    t.deepEqual(r.rejected, []);
    t.is(r.accumulator.mergedUnits, r.unitsTotal);
    t.true(sameCounts(r.accumulator, standInExpected(j)), `unit size ${JSON.stringify(size)}`);
    t.true(r.workers.length >= 2, `workers that contributed: ${r.workers.join(', ')}`);
    t.true(r.runs.every((x) => x.backend === 'stand-in'));
  }
  stop.abort();
  child.kill('SIGTERM');
  await childExit;
  t.regex(out, /"unitsDone":\d+/);
  t.true((await inProc).unitsDone >= 0);
});
