// A worker whose backend holds the event loop (as a native inference call does) while its other
// slot pulls: deliveries that reach an already expired pull are dropped by the client and come
// back after the ack wait. They must not count as attempts: with max 1 attempt, no unit fails.
import test from 'ava';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { WORK_CONSUMER, WORK_STREAM } from '../../cluster/layout.js';
import { distSetup, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';

test('deliveries lost to a busy event loop cost no attempts', async (t) => {
  const d = await distSetup(t, { images: 8, ackWaitMs: 2500 });
  const env = { WORKER_PULL_EXPIRES_MS: '1000', WORKER_HEARTBEAT_MS: '300' };
  d.procs.worker(d.servers, { workerId: 'busy', concurrency: 2, knobs: { blockMs: 3 * 1500, blockChunks: 3 }, env });
  await waitWorkersLive(d.servers, ['busy']);
  const r = await runCoordinator(d.coordOpts({ unitImages: 2, maxAttempts: 1 }));
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, [], 'no unit reported failed');
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  const nc = await connect({ servers: d.servers });
  t.teardown(() => nc.close());
  const ci = await (await jetstreamManager(nc)).consumers.info(WORK_STREAM, WORK_CONSUMER);
  // deliveries beyond one per unit: lost ones (or ack-wait expiries) that came back
  t.log(`${ci.delivered.consumer_seq - r.unitsTotal} extra deliveries for ${r.unitsTotal} units`);
});
