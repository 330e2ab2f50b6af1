// The coordinator SIGKILLed mid-job and started again: it rebuilds its state from the results
// stream, re-publishes only what is missing, and ends with identical counts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { RESULTS_STREAM, jobResultsSubjects } from '../../cluster/layout.js';
import { distSetup, sleep, waitFor, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest, type ResultJson } from '../../lab/results.js';

test('a coordinator killed and restarted resumes the job; identical counts', async (t) => {
  const d = await distSetup(t, { images: 40 });
  d.procs.worker(d.servers, { workerId: 'w1', knobs: { delayMs: 100 } });
  d.procs.worker(d.servers, { workerId: 'w2', knobs: { delayMs: 100 } });
  await waitWorkersLive(d.servers, ['w1', 'w2']);
  const out1 = join(d.dir, 'result1.json');
  const opts = { ackWaitMs: 2000, unitImages: 2, progressIntervalMs: 200 };
  const c1 = d.procs.coordinator(d.servers, d.jobFile, out1, opts, 'coordinator-1');
  const nc = await connect({ servers: d.servers });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const results = async () => {
    try {
      return (await jsm.streams.info(RESULTS_STREAM, { subjects_filter: jobResultsSubjects(d.job.jobId) })).state.messages;
    } catch {
      return 0;
    }
  };
  await waitFor('some results', async () => (await results()) >= 6);
  c1.kill('SIGKILL');
  t.is((await c1.exited).signal, 'SIGKILL');
  await sleep(300); // workers keep going while no coordinator runs
  const before = await results();
  t.true(before >= 6);
  const out2 = join(d.dir, 'result2.json');
  const c2 = d.procs.coordinator(d.servers, d.jobFile, out2, opts, 'coordinator-2');
  t.is((await c2.waitExit(60_000)).code, 0);
  const r = JSON.parse(readFileSync(out2, 'utf8')) as ResultJson;
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.true(r.resumedUnits >= before, `resumed ${r.resumedUnits} units from ${before} results`);
  t.is(r.publishedUnits, 0, 'every unit without a result was still queued: nothing re-published');
  t.is(r.mergedUnits, r.unitsTotal);
  t.is(r.digest, countsDigest(expectedAccumulator(d.job)));
});
