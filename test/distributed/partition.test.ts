// A worker cut off (SIGSTOP) for longer than the ack wait, then back (SIGCONT): its unit is
// redone by another worker, and its late result is not counted twice.
import test from 'ava';
import { connect } from '@nats-io/transport-node';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { HEARTBEAT_SUBJECT } from '../../cluster/layout.js';
import { decodeHeartbeat } from '../../proto/index.js';
import { distSetup, sleep, waitFor, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';
import { readJobResults } from '../helpers/stream-results.js';

test('a partitioned worker: its unit is redone elsewhere, its late result ignored', async (t) => {
  const d = await distSetup(t, { images: 160, ackWaitMs: 1000 });
  const slow = d.procs.worker(d.servers, { workerId: 'w1', knobs: { delayMs: 800 } });
  d.procs.worker(d.servers, { workerId: 'w2', knobs: { delayMs: 40 } });
  t.teardown(() => slow.kill('SIGCONT'));
  await waitWorkersLive(d.servers, ['w1', 'w2']);
  const nc = await connect({ servers: d.servers });
  t.teardown(() => nc.close());
  // stop w1 as soon as it reports a unit in flight
  let held = '';
  const stopped = new Promise<void>((resolve) => {
    const sub = nc.subscribe(HEARTBEAT_SUBJECT, {
      callback: (_e, m) => {
        const hb = decodeHeartbeat(m.data, m.subject);
        if (hb.workerId === 'w1' && hb.inFlight.length > 0 && !held) {
          held = hb.inFlight[0]!.split('/')[1]!;
          slow.kill('SIGSTOP');
          sub.unsubscribe();
          resolve();
        }
      },
    });
  });
  const run = runCoordinator(d.coordOpts({ unitImages: 2, keepResults: true }));
  await stopped;
  await sleep(2500); // > ack wait: JetStream hands the unit to w2
  slow.kill('SIGCONT');
  const r = await run;
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  // the held unit has votes from both workers (w1's may land after the job is done); one was counted
  let votersOfHeld: string[] = [];
  await waitFor('both results of the held unit', async () => {
    const results = await readJobResults(nc, d.job.jobId);
    votersOfHeld = results.flatMap((b) => (b.type === 'votes' && b.votes.unitId === held ? [b.votes.workerId] : []));
    return votersOfHeld.includes('w1') && votersOfHeld.includes('w2');
  }, 15_000).catch(() => {});
  t.true(votersOfHeld.includes('w2'), `unit ${held} was redone by w2 (voters: ${votersOfHeld.join(',')})`);
  t.true(votersOfHeld.includes('w1'), `w1 delivered its late result for ${held} (voters: ${votersOfHeld.join(',')})`);
  t.true(slow.running, 'w1 carried on after the partition');
});
