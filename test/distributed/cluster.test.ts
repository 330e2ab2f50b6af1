// A JetStream cluster of three nats-servers with replicated (R3) streams, buckets and object
// store: one server SIGKILLed mid-job, the job still completes with identical counts.
import test from 'ava';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { RESULTS_STREAM, WORK_STREAM } from '../../cluster/layout.js';
import { distSetup, waitFor, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';

test('3-server JetStream cluster, R3 streams: a server killed mid-job, the job completes identically', async (t) => {
  const d = await distSetup(t, { images: 60, cluster: true });
  const cluster = d.cluster!;
  d.procs.worker(d.servers, { workerId: 'w1', knobs: { delayMs: 80 } });
  d.procs.worker(d.servers, { workerId: 'w2', knobs: { delayMs: 80 } });
  await waitWorkersLive(d.servers, ['w1', 'w2'], 30_000);
  let merged = 0;
  const run = runCoordinator(d.coordOpts({ unitImages: 2, onProgress: (p) => { if (p.unitsDone !== merged) d.log.push(`${new Date().toISOString().slice(11, 23)} progress ${p.unitsDone}`); merged = p.unitsDone; } }));
  await waitFor('a few units merged', () => merged >= 5, 30_000);
  // kill the server leading the results stream: the worst one to lose
  const nc = await connect({ servers: d.servers });
  const jsm = await jetstreamManager(nc);
  const leader = (await jsm.streams.info(RESULTS_STREAM)).cluster?.leader;
  const replicas = (await jsm.streams.info(WORK_STREAM)).config.num_replicas;
  await nc.close();
  const victim = cluster.servers.find((s) => leader !== undefined && leader.endsWith(`-n${cluster.servers.indexOf(s)}`)) ?? cluster.servers[0]!;
  await victim.kill();
  d.log.push(`${new Date().toISOString().slice(11, 23)} TEST killed ${victim.url}`);
  const at = merged;
  const r = await run;
  if (process.env.PATCHCERT_TEST_VERBOSE) t.log(d.log.join('\n') + d.procs.outputs());
  t.is(replicas, 3);
  t.true(at < r.unitsTotal, 'the server died mid-job');
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.deepEqual(r.rejected, []);
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  t.log(`killed ${victim.url} (results stream leader ${leader}) after ${at}/${r.unitsTotal} units; done in ${r.wallSeconds.toFixed(1)} s`);
});
