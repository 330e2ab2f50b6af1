// The nats-server (file storage) restarted mid-job: clients reconnect, nothing stored is lost,
// the job completes with identical counts.
import test from 'ava';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { distSetup, sleep, waitFor, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';

for (const how of ['stop', 'kill'] as const) {
  test(`nats-server ${how === 'kill' ? 'SIGKILLed' : 'stopped'} and restarted mid-job: completes identically`, async (t) => {
    const d = await distSetup(t, { images: 40 });
    d.procs.worker(d.servers, { workerId: 'w1', knobs: { delayMs: 80 }, concurrency: 2 });
    d.procs.worker(d.servers, { workerId: 'w2', knobs: { delayMs: 80 } });
    await waitWorkersLive(d.servers, ['w1', 'w2']);
    let merged = 0;
    const run = runCoordinator(d.coordOpts({ unitImages: 2, onProgress: (p) => { merged = p.unitsDone; d.log.push(`${new Date().toISOString().slice(11, 23)} progress ${p.unitsDone} live ${p.liveWorkers}`); } }));
    await waitFor('a few units merged', () => merged >= 5);
    d.log.push(`${new Date().toISOString().slice(11, 23)} TEST: restarting server`);
    await d.server!.restart({ kill: how === 'kill' });
    d.log.push(`${new Date().toISOString().slice(11, 23)} TEST: server back`);
    const at = merged;
    await sleep(200);
    const r = await run;
    if (process.env.PATCHCERT_TEST_VERBOSE) t.log(d.log.join('\n') + d.procs.outputs());
    t.is(r.state, 'done');
    t.true(at < r.unitsTotal, 'the restart happened mid-job');
    t.deepEqual(r.failedUnits, []);
    t.deepEqual(r.rejected, []);
    t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  });
}
