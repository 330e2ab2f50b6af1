// The distributed side is a library, not only a CLI: a coordinator and a worker run from the
// package's entry point (index.ts) in this process, and `jobStatus` reads the finished job.
import test from 'ava';
import { jobStatus, runCoordinator, runWorker } from '../../index.js';
import { expectedAccumulator, fakeExecutorFactory } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';
import { distSetup } from '../helpers/dist-harness.js';

test('runCoordinator and runWorker from the package entry point run a job to the exact counts', async (t) => {
  const d = await distSetup(t, { images: 6 });
  const stop = new AbortController();
  const worker = runWorker({ servers: d.servers, executorFactory: fakeExecutorFactory(), workerId: 'lib-w', handleSignals: false, signal: stop.signal, log: () => {} });
  const r = await runCoordinator(d.coordOpts({ unitImages: 2 }));
  stop.abort();
  const stats = await worker;
  t.is(r.state, 'done');
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  t.deepEqual(r.workers, ['lib-w']);
  t.is(stats.unitsDone, r.unitsTotal);
  const s = await jobStatus(d.job.jobId, { servers: d.servers });
  t.is(s.state?.state, 'done');
});
