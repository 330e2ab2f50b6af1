// Job control and worker life cycle: status and cancel, graceful drain on SIGTERM, model files
// from the object store, and a worker whose model hash does not match.
import { readFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { cancelJob, formatStatus, jobStatus } from '../../cluster/jobs.js';
import { MODELS_BUCKET, RESULTS_STREAM, WORK_STREAM, jobResultsSubjects, workSubject } from '../../cluster/layout.js';
import { distSetup, waitFor, waitInFlight, waitWorkersLive } from '../helpers/dist-harness.js';
import { readJobResults } from '../helpers/stream-results.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';

test('status and cancel', async (t) => {
  const d = await distSetup(t, { images: 40 });
  d.procs.worker(d.servers, { workerId: 'w1', knobs: { delayMs: 200 } });
  await waitWorkersLive(d.servers, ['w1']);
  let done = 0;
  const run = runCoordinator(d.coordOpts({ unitImages: 2, onProgress: (p) => (done = p.unitsDone) }));
  await waitFor('two units', () => done >= 2);
  const st = await jobStatus(d.job.jobId, { servers: d.servers });
  t.true(st.exists);
  t.is(st.state?.state, 'running');
  t.is(st.spec?.meta.unitsTotal, 20);
  t.regex(formatStatus(st), /running[\s\S]*units \d+\/20 \(0 failed\), images \d+\/40, [\d.]+ ablations\/s.*1 live workers/);
  const c = await cancelJob(d.job.jobId, { servers: d.servers, reason: 'test says stop' });
  t.is(c.state, 'cancelled');
  const r = await run;
  t.is(r.state, 'cancelled');
  t.true(r.accumulator.mergedUnits < 20);
  const after = await jobStatus(d.job.jobId, { servers: d.servers });
  t.is(after.state?.state, 'cancelled');
  t.is(after.state?.reason, 'test says stop');
  // its queued units are gone, and the job cannot be restarted under the same id
  const nc = await connect({ servers: d.servers });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  t.is((await jsm.streams.info(WORK_STREAM, { subjects_filter: workSubject(d.job.jobId) })).state.messages, 0);
  t.is((await jsm.streams.info(RESULTS_STREAM, { subjects_filter: jobResultsSubjects(d.job.jobId) })).state.messages, 0);
  await t.throwsAsync(runCoordinator(d.coordOpts()), { message: /already cancelled/ });
  t.is((await jobStatus('no-such-job', { servers: d.servers })).exists, false);
});

test('status of a finished job', async (t) => {
  const d = await distSetup(t, { images: 8 });
  d.procs.worker(d.servers, { workerId: 'w1' });
  const r = await runCoordinator(d.coordOpts({ unitImages: 2 }));
  t.is(r.state, 'done');
  const st = await jobStatus(d.job.jobId, { servers: d.servers });
  t.is(st.state?.state, 'done');
  t.is(st.state?.progress?.unitsDone, 4);
  t.is(st.state?.progress?.imagesComplete, 8);
  await t.throwsAsync(runCoordinator(d.coordOpts()), { message: /already done/ });
  // a changed spec under the same id is refused
  await t.throwsAsync(runCoordinator(d.coordOpts({ job: { ...d.job, numClasses: 11 } })), { message: /different spec/ });
});

test('SIGTERM drains a worker: in-flight units finish, then it exits 0', async (t) => {
  const d = await distSetup(t, { images: 24 });
  const w1 = d.procs.worker(d.servers, { workerId: 'w1', concurrency: 2, knobs: { delayMs: 700 } });
  const run = runCoordinator(d.coordOpts({ unitImages: 2, keepResults: true }));
  const held = await waitInFlight(d.servers, 'w1', 2);
  w1.kill('SIGTERM');
  const exit = await w1.waitExit(15_000);
  t.is(exit.code, 0);
  const stats = JSON.parse(w1.output().trim().split('\n').pop()!);
  t.true(stats.unitsDone >= 2, `w1 finished its in-flight units: ${JSON.stringify(stats)}`);
  // a second worker with a short drain timeout releases its unit instead
  const w2 = d.procs.worker(d.servers, { workerId: 'w2', knobs: { delayMs: 5000 }, env: { WORKER_DRAIN_TIMEOUT_MS: '100' } });
  await waitInFlight(d.servers, 'w2', 1);
  w2.kill('SIGTERM');
  t.is((await w2.waitExit(15_000)).code, 0);
  const s2 = JSON.parse(w2.output().trim().split('\n').pop()!);
  t.true(s2.unitsReleased >= 1, JSON.stringify(s2));
  t.is(s2.unitsDone, 0);
  d.procs.worker(d.servers, { workerId: 'w3' });
  const r = await run;
  t.is(r.state, 'done');
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  // the units w1 held when told to stop were finished by w1 itself
  const nc = await connect({ servers: d.servers });
  t.teardown(() => nc.close());
  const results = await readJobResults(nc, d.job.jobId);
  for (const key of held) {
    const unit = key.split('/')[1];
    t.true(results.some((b) => b.type === 'votes' && b.votes.unitId === unit && b.votes.workerId === 'w1'), `w1 finished ${unit}`);
  }
});

test('workers without the model path fetch it from the object store', async (t) => {
  const d = await distSetup(t, { images: 8 });
  const run = runCoordinator(d.coordOpts({ unitImages: 2 }));
  const nc = await connect({ servers: d.servers });
  t.teardown(() => nc.close());
  await waitFor('the model in the object store', async () => {
    try {
      const os = await new Objm(nc).create(MODELS_BUCKET);
      return (await os.info(d.job.model.sha256)) !== null;
    } catch {
      return false;
    }
  });
  // the shared path disappears: workers must use the object store copy
  await rename(join(d.dir, 'model'), join(d.dir, 'model-moved'));
  const cache = join(d.dir, 'cache');
  const w = d.procs.worker(d.servers, { workerId: 'w1', env: { WORKER_MODEL_CACHE: cache } });
  const r = await run;
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  t.regex(w.output(), /fetched model [0-9a-f]{12}… from the object store/);
  t.is(JSON.parse(readFileSync(join(cache, d.job.model.sha256, 'model.manifest.json'), 'utf8')).name, 'fake');
});

test('a worker whose model hash does not match refuses every unit with the reason', async (t) => {
  const d = await distSetup(t, { images: 6 });
  // it is the only worker and never stops itself: each unit is offered to it again, openly, and its
  // second refusal is final
  d.procs.worker(d.servers, { workerId: 'wrong-model', knobs: { modelSha256: 'ee'.repeat(32) }, env: { WORKER_MAX_FAILURES_IN_A_ROW: '0' } });
  const r = await runCoordinator(d.coordOpts({ unitImages: 2 }));
  t.is(r.state, 'done');
  t.is(r.accumulator.mergedUnits, 0);
  t.is(r.failedUnits.length, 3);
  for (const f of r.failedUnits) {
    t.is(f.kind, 'model');
    t.is(f.workerId, 'wrong-model');
    t.regex(f.error, /cannot run job .*model hash mismatch/);
  }
});

test('a worker with the wrong model beside a healthy one: every unit certified by the healthy one; the wrong one stops itself', async (t) => {
  const d = await distSetup(t, { images: 24 });
  const bad = d.procs.worker(d.servers, { workerId: 'wrong-model', knobs: { modelSha256: 'ee'.repeat(32) } });
  await waitWorkersLive(d.servers, ['wrong-model']);
  const run = runCoordinator(d.coordOpts({ unitImages: 2 }));
  // the bad worker has the queue to itself until it gives up: 3 distinct units failed in a row
  const exit = await bad.waitExit(60_000);
  t.is(exit.code, 2);
  t.regex(bad.output(), /3 units failed in a row on this worker \(last: worker wrong-model cannot run job .*model hash mismatch/);
  d.procs.worker(d.servers, { workerId: 'healthy' });
  const r = await run;
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  t.deepEqual([...new Set(Object.values(r.unitWorkers).flat())], ['healthy']);
});

test('a second coordinator of a running job waits for the first instead of splitting the results', async (t) => {
  const d = await distSetup(t, { images: 24 });
  d.procs.worker(d.servers, { workerId: 'w1', knobs: { delayMs: 60 } });
  let started = false;
  const first = runCoordinator(d.coordOpts({ unitImages: 2, onProgress: () => (started = true) }));
  await waitFor('the first coordinator running', () => started);
  const log: string[] = [];
  const second = runCoordinator(d.coordOpts({ unitImages: 2, log: (s) => log.push(s) }));
  const r = await first;
  t.is(r.state, 'done');
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  await t.throwsAsync(second, { message: /already done/ });
  t.regex(log.join('\n'), /is being coordinated by .*; waiting for it to stop/);
});
