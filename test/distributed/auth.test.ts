// Credentials and permissions: the deploy/ server config's users run a job and cannot step out
// of their role; token, nkey and mutual-TLS connections through the shared connect helper.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import test from 'ava';
import { nkeys } from '@nats-io/transport-node';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { cancelJob, jobStatus } from '../../cluster/jobs.js';
import { connectNats, natsConnectionOptions, natsOptionsFromEnv } from '../../cluster/connect.js';
import { MODELS_BUCKET, RESULTS_STREAM, WORK_STREAM, ensureStreams, jobsKv, modelsStore, workSubject } from '../../cluster/layout.js';
import { distSetup, waitFor } from '../helpers/dist-harness.js';
import { expectedAccumulator } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';
import { jwtSetup } from '../helpers/nats-jwt.js';
import { DEPLOY_PASSWORDS } from '../helpers/deploy-passwords.js';

const AUTH_CONF = fileURLToPath(new URL('../../../deploy/nats/patchcert-auth.conf', import.meta.url));
const PASSWORDS = DEPLOY_PASSWORDS;

test('deploy/nats/patchcert-auth.conf: coordinator, workers and operator run a job; workers stay in their lane', async (t) => {
  const d = await distSetup(t, {
    images: 16,
    server: { files: { 'patchcert-auth.conf': readFileSync(AUTH_CONF, 'utf8') }, extraConfig: 'include "patchcert-auth.conf"', env: PASSWORDS },
  });
  const run = runCoordinator(d.coordOpts({ unitImages: 2, user: 'coordinator', password: 'coord-pw' }));
  // workers get the model from the object store, through their restricted credentials
  const admin = await connectNats({ servers: d.servers, user: 'coordinator', password: 'coord-pw', inboxPrefix: '_INBOX.coordinator.test' });
  t.teardown(() => admin.close());
  await waitFor('the model in the object store', async () => {
    try {
      return (await (await new Objm(admin).create(MODELS_BUCKET)).info(d.job.model.sha256)) !== null;
    } catch {
      return false;
    }
  });
  await rename(join(d.dir, 'model'), join(d.dir, 'model-elsewhere'));
  const workerEnv = { NATS_USER: 'worker', NATS_PASSWORD: 'worker-pw', WORKER_MODEL_CACHE: join(d.dir, 'cache') };
  d.procs.worker(d.servers, { workerId: 'w1', env: workerEnv, knobs: { delayMs: 20 } });
  d.procs.worker(d.servers, { workerId: 'w2', env: workerEnv, knobs: { delayMs: 20 } });
  const r = await run;
  t.is(r.state, 'done');
  t.deepEqual(r.failedUnits, []);
  t.deepEqual(r.failedUnits, []);
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  t.true(r.workers.length >= 1);
  t.notRegex(d.server!.logTail(500), /Violation/, 'no role needed more than it was given');

  // the operator reads status and cancels a (second) job
  const op = { servers: d.servers, user: 'operator', password: 'operator-pw' };
  t.is((await jobStatus(d.job.jobId, op)).state?.state, 'done');
  const job2 = { ...d.job, jobId: `${d.job.jobId}-2` };
  for (const p of d.procs.all) p.kill('SIGSTOP'); // job 2 must still be running when cancelled
  t.teardown(() => d.procs.all.forEach((p) => p.kill('SIGCONT')));
  let started = false;
  const run2 = runCoordinator(d.coordOpts({ job: job2, unitImages: 2, user: 'coordinator', password: 'coord-pw', onProgress: () => (started = true) }));
  await waitFor('job 2 started', () => started);
  const cancelled = await cancelJob(job2.jobId, op);
  t.is(cancelled.state, 'cancelled');
  // the operator may not purge: the job's coordinator, told by the cancel, drops its units itself
  t.is(cancelled.purged, false);
  t.is((await run2).state, 'cancelled');
  const adminNc = await connectNats({ servers: d.servers, user: 'admin', password: 'admin-pw', inboxPrefix: '_INBOX.operator.t' });
  t.teardown(() => adminNc.close());
  const adminJsm = await jetstreamManager(adminNc);
  t.is((await adminJsm.streams.info(WORK_STREAM, { subjects_filter: workSubject(job2.jobId) })).state.messages, 0, 'job 2 has no queued units left');
  // an admin may purge; an operator may not
  await adminJsm.streams.purge(WORK_STREAM, { filter: workSubject(job2.jobId) });
  const opNc = await connectNats({ ...op, inboxPrefix: '_INBOX.operator.t2', maxReconnectAttempts: 0 });
  t.teardown(() => opNc.close());
  await t.throwsAsync((await jetstreamManager(opNc)).streams.purge(WORK_STREAM, { filter: workSubject(job2.jobId) }), { message: /permission|authoriz|timeout/i });

  // a worker's credentials cannot publish work, write job records or administer streams
  const nc = await connectNats({ servers: d.servers, user: 'worker', password: 'worker-pw', maxReconnectAttempts: 0, inboxPrefix: '_INBOX.worker.test' });
  t.teardown(() => nc.close());
  const js = jetstream(nc, { timeout: 1000 });
  await t.throwsAsync(js.publish(workSubject(d.job.jobId), new Uint8Array([1]), { timeout: 1000 }));
  const kv = await jobsKv(nc, { bindOnly: true });
  await t.throwsAsync(kv.put(`${d.job.jobId}.state`, new Uint8Array([1]), {}));
  const jsm = await jetstreamManager(nc, { timeout: 1000 }).catch(() => undefined);
  if (jsm) await t.throwsAsync(jsm.streams.purge(RESULTS_STREAM));
  await waitFor('violations logged', () => /Publish Violation - User "worker", Subject "patchcert\.work\./.test(d.server!.logTail(500)), 5000);
  t.regex(d.server!.logTail(500), /Publish Violation - User "worker", Subject "\$KV\.PATCHCERT_JOBS\./);
  t.notRegex(d.server!.logTail(500), /Violation - User "coordinator"/);
  t.regex(d.server!.logTail(500), /Publish Violation - User "operator", Subject "\$JS\.API\.STREAM\.PURGE\.PATCHCERT_WORK"/);
  t.notRegex(d.server!.logTail(500), /Violation - User "admin"/);
});

test('token and nkey credentials, from options and from the environment', async (t) => {
  const d = await distSetup(t, { images: 4, server: { extraConfig: 'authorization { token: "t0k3n-s3cret" }' } });
  await t.throwsAsync(connectNats({ servers: d.servers, maxReconnectAttempts: 0 }), { message: /cannot connect to NATS at .*(Authorization|AUTHORIZATION)/i });
  const nc = await connectNats({ servers: d.servers, token: 't0k3n-s3cret' });
  await nc.close();
  d.procs.worker(d.servers, { workerId: 'wt', env: { NATS_TOKEN: 't0k3n-s3cret' } });
  const r = await runCoordinator(d.coordOpts({ unitImages: 2, token: 't0k3n-s3cret' }));
  t.is(r.state, 'done');
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));

  const user = nkeys.createUser();
  const seed = new TextDecoder().decode(user.getSeed());
  const seedFile = join(d.dir, 'user.nk');
  writeFileSync(seedFile, seed + '\n');
  const d2 = await distSetup(t, { images: 4, server: { extraConfig: `authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }` } });
  await t.throwsAsync(connectNats({ servers: d2.servers, maxReconnectAttempts: 0 }));
  await (await connectNats({ servers: d2.servers, nkey: seed })).close();
  d2.procs.worker(d2.servers, { workerId: 'wn', env: { NATS_NKEY: seedFile } });
  const r2 = await runCoordinator(d2.coordOpts({ unitImages: 2, nkey: seedFile }));
  t.is(r2.state, 'done');
  t.is(countsDigest(r2.accumulator), countsDigest(expectedAccumulator(d2.job)));
});

function makeCerts(dir: string): Record<string, string> {
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=patchcert test CA', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  writeFileSync(f('san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const who of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`));
    ssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('san.cnf'), '-out', f(`${who}.pem`));
  }
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

// timeout: nats-server gives a TLS handshake 0.5 s by default, which a loaded CI machine overran (i/o timeout)
test('mutual TLS from options and from NATS_CA / NATS_CERT / NATS_KEY', async (t) => {
  const certDir = (await import('node:fs/promises')).mkdtemp(join((await import('node:os')).tmpdir(), 'patchcert-tls-'));
  const dir = await certDir;
  t.teardown(() => import('node:fs/promises').then((fs) => fs.rm(dir, { recursive: true, force: true })));
  const c = makeCerts(dir);
  const d = await distSetup(t, {
    images: 4,
    server: { extraConfig: `tls { cert_file: "${c.serverCert}", key_file: "${c.serverKey}", ca_file: "${c.ca}", verify: true, timeout: 10 }` },
  });
  const servers = d.servers.map((u) => u.replace('nats://', 'tls://'));
  // no client certificate: refused
  await t.throwsAsync(connectNats({ servers, tlsCa: c.ca!, maxReconnectAttempts: 0, connectTimeoutMs: 2000 }));
  await (await connectNats({ servers, tlsCa: c.ca!, tlsCert: c.clientCert!, tlsKey: c.clientKey! })).close();
  d.procs.worker(servers, { workerId: 'wtls', env: { NATS_CA: c.ca!, NATS_CERT: c.clientCert!, NATS_KEY: c.clientKey! } });
  const r = await runCoordinator({ ...d.coordOpts({ unitImages: 2 }), servers, tlsCa: c.ca!, tlsCert: c.clientCert!, tlsKey: c.clientKey! });
  t.is(r.state, 'done');
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
});

test('connection options: environment fallback and refused combinations', (t) => {
  const env = { NATS_URL: 'nats://a:1, nats://b:2', NATS_USER: 'u', NATS_PASSWORD: 'p', NATS_CA: '/ca.pem' };
  const o = natsOptionsFromEnv({ password: 'given' }, env);
  t.deepEqual(o.servers, ['nats://a:1', 'nats://b:2']);
  t.is(o.user, 'u');
  t.is(o.password, 'given', 'options win over the environment');
  t.is(o.tlsCa, '/ca.pem');
  t.deepEqual(natsOptionsFromEnv({ servers: 'nats://x:3' }, env).servers, 'nats://x:3');
  t.throws(() => natsConnectionOptions({ user: 'u', token: 't' }), { message: /only one of/ });
  t.throws(() => natsConnectionOptions({ password: 'p' }), { message: /password needs a user/ });
  t.throws(() => natsConnectionOptions({ tlsCert: '/x' }), { message: /needs its key/ });
  t.throws(() => natsConnectionOptions({ creds: '/nonexistent.creds' }), { message: /creds file not found: \/nonexistent\.creds/ });
  t.throws(() => natsConnectionOptions({ nkey: 'not-a-seed' }), { message: /nkey seed file not found/ });
  const co = natsConnectionOptions({ user: 'u', password: 'p' });
  t.is(co.user, 'u');
  t.is(co.pass, 'p');
  t.is(co.maxReconnectAttempts, -1);
});

test('deploy/nats/job-coordinator-user.sh: a coordinator confined to its job runs it, and nothing else', async (t) => {
  const jobId = `confined-${process.pid}`;
  const user = execFileSync('sh', [fileURLToPath(new URL('../../../deploy/nats/job-coordinator-user.sh', import.meta.url)), jobId], { encoding: 'utf8' });
  const auth = readFileSync(AUTH_CONF, 'utf8').replace('{ user: coordinator,', `${user}\n      { user: coordinator,`);
  const d = await distSetup(t, {
    images: 8,
    jobId,
    server: { files: { 'patchcert-auth.conf': auth }, extraConfig: 'include "patchcert-auth.conf"', env: { ...PASSWORDS, PATCHCERT_JOB_COORDINATOR_PASSWORD: 'job-pw' } },
  });
  // an administrator (the general coordinator user) creates streams, buckets and the worker consumer
  const admin = await connectNats({ servers: d.servers, user: 'coordinator', password: 'coord-pw', inboxPrefix: '_INBOX.coordinator.test' });
  t.teardown(() => admin.close());
  await ensureStreams(await jetstreamManager(admin), { ackWaitMs: 2000 });
  await jobsKv(admin);
  await modelsStore(admin);
  d.procs.worker(d.servers, { workerId: 'w1', env: { NATS_USER: 'worker', NATS_PASSWORD: 'worker-pw' } });
  const creds = { user: `coordinator-${jobId}`, password: 'job-pw' };
  const r = await runCoordinator(d.coordOpts({ unitImages: 2, ...creds }));
  t.is(r.state, 'done');
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  t.notRegex(d.server!.logTail(500), /Violation/);
  // another job's subjects and records are out of reach
  const other = { ...d.job, jobId: 'someone-elses-job' };
  await t.throwsAsync(runCoordinator(d.coordOpts({ job: other, ...creds })));
  await waitFor('violation logged', () => /Violation - User "coordinator-confined-/.test(d.server!.logTail(500)), 5000);
});

test('a .creds file (operator, account and user JWTs) from options and from NATS_CREDS', async (t) => {
  const { serverConfig, creds } = jwtSetup();
  const d = await distSetup(t, { images: 4, server: { extraConfig: serverConfig } });
  const credsFile = join(d.dir, 'worker.creds');
  writeFileSync(credsFile, creds);
  await t.throwsAsync(connectNats({ servers: d.servers, maxReconnectAttempts: 0, connectTimeoutMs: 3000 }));
  await (await connectNats({ servers: d.servers, creds: credsFile })).close();
  d.procs.worker(d.servers, { workerId: 'wc', env: { NATS_CREDS: credsFile } });
  const r = await runCoordinator(d.coordOpts({ unitImages: 2, creds: credsFile }));
  t.is(r.state, 'done');
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
});
