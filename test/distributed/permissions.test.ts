// Per-worker users (deploy/nats/worker-users.sh) against the real server: a worker votes and reads
// replies as itself only. A forger holding its own worker credentials publishes forged votes and
// failures naming an honest worker, on that worker's subject (refused by the server) and on its own
// (refused by the coordinator: sender mismatch); with replication off the job still completes with
// the fault-free counts, unflagged.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { connectNats } from '../../cluster/connect.js';
import { jobStatus, listJobs } from '../../cluster/jobs.js';
import { distSetup, waitFor } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { FORGER_MAIN } from '../../lab/procs.js';
import { countsDigest } from '../../lab/results.js';
import { DEPLOY_PASSWORDS } from '../helpers/deploy-passwords.js';

const deployFile = (f: string) => fileURLToPath(new URL(`../../../deploy/nats/${f}`, import.meta.url));
const PASSWORDS = {
  ...DEPLOY_PASSWORDS,
  PATCHCERT_WORKER_W1_PASSWORD: 'w1-pw',
  PATCHCERT_WORKER_W2_PASSWORD: 'w2-pw',
  PATCHCERT_WORKER_FORGER_PASSWORD: 'forger-pw',
};

test('per-worker users: a forger cannot vote as another worker nor read its replies; replicate 0, the counts are the fault-free ones', async (t) => {
  const users = execFileSync('sh', [deployFile('worker-users.sh'), 'w1', 'w2', 'forger'], { encoding: 'utf8' });
  const marker = '# per-worker users (deploy/nats/worker-users.sh) go here';
  const conf = readFileSync(deployFile('patchcert-auth.conf'), 'utf8');
  t.true(conf.includes(marker));
  const d = await distSetup(t, {
    images: 16,
    server: { files: { 'patchcert-auth.conf': conf.replace(marker, users) }, extraConfig: 'include "patchcert-auth.conf"', env: PASSWORDS },
  });
  const coord = { user: 'coordinator', password: 'coord-pw' };
  // the job is queued before any honest worker is there: a forgery would be first in line
  const run = runCoordinator(d.coordOpts({ unitImages: 2, ...coord }));
  const op = { servers: d.servers, user: 'operator', password: 'operator-pw' };
  await waitFor('the job recorded', async () => (await jobStatus(d.job.jobId, op).catch(() => undefined))?.exists === true, 20_000);

  const forger = d.procs.spawnNode('forger', FORGER_MAIN, {
    NATS_URL: d.servers.join(','), NATS_USER: 'worker-forger', NATS_PASSWORD: 'forger-pw', WORKER_ID: 'forger',
    FORGE_MODE: 'impersonate', FORGE_JOB: d.job.jobId, FORGE_AS: 'w1',
  });
  t.is((await forger.waitExit(30_000)).code, 0, forger.output());
  const report = JSON.parse(forger.output().trim().split('\n').pop()!) as { published: number; permissionErrors: number };
  t.true(report.published > 0);
  t.true(report.permissionErrors > 0, 'the server told the forger its publishes were refused');
  await waitFor('refusals logged', () => /Publish Violation - User "worker-forger", Subject "patchcert\.results\.[^.]+\.w1"/.test(d.server!.logTail(2000)), 5000);

  // nor may it read another worker's replies, or anyone's
  const spy = await connectNats({ servers: d.servers, user: 'worker-forger', password: 'forger-pw', inboxPrefix: '_INBOX.worker.forger', maxReconnectAttempts: 0 });
  t.teardown(() => spy.close());
  const heard: string[] = [];
  for (const subject of ['_INBOX.worker.w1.>', '_INBOX.>', '_INBOX.coordinator.>']) spy.subscribe(subject, { callback: (e, m) => void (e || !m ? undefined : heard.push(m.subject)) });
  await spy.flush();
  await waitFor('subscriptions refused', () => /Subscription Violation - User "worker-forger", Subject "_INBOX\.worker\.w1\.>"/.test(d.server!.logTail(2000)), 5000);

  // the honest workers, each with its own user
  for (const id of ['w1', 'w2']) d.procs.worker(d.servers, { workerId: id, env: { NATS_USER: `worker-${id}`, NATS_PASSWORD: `${id}-pw` }, knobs: { delayMs: 20 } });
  const r = await run;
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)), 'forged votes counted nowhere');
  t.false(r.flagged);
  t.deepEqual(r.alarms, []);
  // what it could publish (its own subject, naming w1) the coordinator refused as a sender mismatch
  t.true(r.rejected.some((x) => /sender mismatch: published on worker forger's subject, the message names worker w1/.test(x.error)), JSON.stringify(r.rejected.slice(0, 3)));
  t.false(r.workers.includes('forger'));
  t.deepEqual(heard, [], 'no reply meant for another client reached the forger');
  const log = d.server!.logTail(3000);
  t.notRegex(log, /Violation - User "worker-w[12]"/, 'the honest workers needed nothing beyond their own user');
  t.notRegex(log, /Violation - User "coordinator"/);
  // operators list jobs through their own inbox
  t.true((await listJobs(op)).some((j) => j.jobId === d.job.jobId && j.state === 'done'));
  t.notRegex(d.server!.logTail(3000), /Violation - User "operator"/);
});
