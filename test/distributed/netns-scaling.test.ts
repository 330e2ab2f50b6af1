// Several hosts on one machine: network namespaces joined by a bridge. nats-server runs on one,
// the coordinator on another, four workers on the rest; one worker loses its network link for
// longer than the ack wait mid-job. The job's counts equal the single-process sum.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { expectedAccumulator, makeFakeJob } from '../../lab/fake-executor.js';
import { sleep } from '../helpers/dist-harness.js';
import { NatsServer } from '../../lab/nats-server.js';
import { NetLab, netnsUnavailable } from '../../lab/netns.js';
import { Procs } from '../../lab/procs.js';
import { countsDigest, type ResultJson } from '../../lab/results.js';

const why = netnsUnavailable();
if (why) console.log(`netns-scaling: skipped: ${why}`);
const maybe = why ? test.skip : test;

maybe('namespace hosts: nats, coordinator and 4 workers on separate network namespaces; a worker partitioned', async (t) => {
  const workers = ['w1', 'w2', 'w3', 'w4'];
  const lab = NetLab.create(['nats', 'coord', ...workers]);
  const procs = new Procs();
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-netns-'));
  let server: NatsServer | undefined;
  t.teardown(async () => {
    if (!t.passed) console.error(procs.outputs() + '\n----- nats-server\n' + (server?.logTail(40) ?? ''));
    await procs.cleanup();
    await server?.cleanup();
    lab.destroySync();
    await rm(dir, { recursive: true, force: true });
  });
  server = await NatsServer.start({ host: lab.addr('nats'), port: 4222, monitorPort: 8222, wrap: lab.exec('nats'), readyByLog: true });
  t.is(server.url, `nats://${lab.addr('nats')}:4222`);
  const job = await makeFakeJob(join(dir, 'model'), { jobId: `netns-${process.pid}`, images: 360 });
  const jobFile = join(dir, 'job.json');
  await writeFile(jobFile, JSON.stringify(job));
  for (const w of workers) procs.worker(server.url, { workerId: w, wrap: lab.exec(w), knobs: { delayMs: 100 } });
  const out = join(dir, 'result.json');
  const coord = procs.coordinator(server.url, jobFile, out, { ackWaitMs: 1500, unitImages: 2, progressIntervalMs: 250 }, 'coordinator', lab.exec('coord'));
  await sleep(1500);
  lab.setLink('w2', false); // w2 drops off the network for longer than the ack wait
  await sleep(3000);
  lab.setLink('w2', true);
  const exit = await coord.waitExit(90_000);
  t.is(exit.code, 0, coord.output());
  const r = JSON.parse(readFileSync(out, 'utf8')) as ResultJson;
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.is(r.mergedUnits, r.unitsTotal);
  t.is(r.digest, countsDigest(expectedAccumulator(job)));
  t.true(r.workers.length >= 3, `workers that contributed: ${r.workers.join(', ')}`);
  t.log(`${r.unitsTotal} units from ${r.workers.join(', ')} in ${r.wallSeconds.toFixed(1)} s; ${r.duplicates} late/duplicate results ignored`);
});
