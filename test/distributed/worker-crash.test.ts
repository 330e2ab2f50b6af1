// A worker SIGKILLed in the middle of a unit: JetStream redelivers the unit after the ack wait,
// another worker runs it, and it is counted once.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { distSetup, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';

test('a worker killed mid-unit: the unit is redelivered and counted once', async (t) => {
  const d = await distSetup(t, { images: 16, ackWaitMs: 1500 });
  const marker = join(d.dir, 'crashed');
  const crashUnit = 'i4-6.a0-16';
  const knobs = { delayMs: 200, crashUnit, crashMarker: marker };
  const ws = [1, 2, 3].map((i) => d.procs.worker(d.servers, { workerId: `w${i}`, knobs }));
  await waitWorkersLive(d.servers, ['w1', 'w2', 'w3']);
  const r = await runCoordinator(d.coordOpts({ unitImages: 2 }));
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.true(existsSync(marker), 'a worker crashed on the unit');
  const crashedPid = Number(readFileSync(marker, 'utf8'));
  const crashed = ws.find((w) => w.pid === crashedPid)!;
  t.truthy(crashed);
  t.is((await crashed.exited).signal, 'SIGKILL');
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  t.false(r.workers.includes(crashed.name) && r.workers.length === 1);
});
