// Several faults in one job: a worker SIGKILLed mid-unit, a unit failing once, a worker
// partitioned past the ack wait, injected duplicates, the coordinator SIGKILLed and restarted,
// and the nats-server SIGKILLed and restarted. The counts equal the fault-free ones.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { RESULTS_STREAM, jobResultsSubjects } from '../../cluster/layout.js';
import { distSetup, sleep, waitFor, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest, type ResultJson } from '../../lab/results.js';

test('chaos: crash, flaky unit, partition, duplicates, coordinator and server restarts; counts unchanged', async (t) => {
  const d = await distSetup(t, { images: 200, ackWaitMs: 1000 });
  const crashMarker = join(d.dir, 'crashed');
  const flakyMarker = join(d.dir, 'flaky');
  const knobs = { delayMs: 150, crashUnit: 'i40-42.a0-16', crashMarker, flakyUnit: 'i60-62.a0-16', flakyMarker };
  const ws = [1, 2, 3].map((i) => d.procs.worker(d.servers, { workerId: `w${i}`, knobs }));
  t.teardown(() => ws.forEach((w) => w.kill('SIGCONT')));
  await waitWorkersLive(d.servers, ['w1', 'w2', 'w3']);
  const opts = { ackWaitMs: 1000, unitImages: 2, progressIntervalMs: 200 };
  const c1 = d.procs.coordinator(d.servers, d.jobFile, join(d.dir, 'r1.json'), opts, 'coordinator-1');

  const nc = await connect({ servers: d.servers, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const count = async () => {
    try {
      return (await jsm.streams.info(RESULTS_STREAM, { subjects_filter: jobResultsSubjects(d.job.jobId) })).state.messages;
    } catch {
      return 0;
    }
  };
  await waitFor('first results', async () => (await count()) >= 10);
  // duplicates: the first results, re-published under new message ids
  const si = await jsm.streams.info(RESULTS_STREAM);
  for (let seq = si.state.first_seq, n = 0; n < 3; seq++) {
    const m = await jsm.streams.getMessage(RESULTS_STREAM, { seq }).catch(() => undefined);
    if (!m || !m.subject.startsWith(`patchcert.results.${d.job.jobId}.`)) continue;
    await js.publish(m.subject, m.data, { msgID: `chaos-dup-${seq}` });
    n++;
  }
  // partition w2 past the ack wait
  const w2 = ws[1]!;
  w2.kill('SIGSTOP');
  await sleep(600);
  // the coordinator dies
  c1.kill('SIGKILL');
  await c1.exited;
  await sleep(600);
  // the server dies and comes back
  await d.server!.restart({ kill: true });
  await sleep(800);
  w2.kill('SIGCONT');
  // a replacement for the worker that crashed (if it has by now)
  d.procs.worker(d.servers, { workerId: 'w4', knobs });
  const out = join(d.dir, 'r2.json');
  const c2 = d.procs.coordinator(d.servers, d.jobFile, out, opts, 'coordinator-2');
  t.is((await c2.waitExit(90_000)).code, 0);
  const r = JSON.parse(readFileSync(out, 'utf8')) as ResultJson;
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.deepEqual(r.rejected, []);
  t.true(existsSync(crashMarker), 'a worker crashed mid-unit');
  t.true(existsSync(flakyMarker), 'the flaky unit failed once');
  t.true(r.resumedUnits > 0);
  t.true(r.duplicates >= 3);
  t.is(r.mergedUnits, r.unitsTotal);
  t.is(r.digest, countsDigest(expectedAccumulator(d.job)), 'chaos counts equal the fault-free counts');
});
