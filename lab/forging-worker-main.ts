// A hostile worker for the adversarial tests. Its messages are well-formed: right job, model hash,
// unit ranges and counts within their span; only their content is a lie. FORGE_MODE:
//   lie (default)  a real worker (onnx backend, as `patchcert worker --backend onnx`) that answers
//                  every other unit it pulls with every vote moved to class 0 and the others with a
//                  failure report it made up ("out of memory"), under its own id (WORKER_ID);
//   impersonate    computes nothing: for every unit of FORGE_JOB (read from the job bucket, as a
//                  worker may) it publishes forged votes and a forged failure on FORGE_AS's results
//                  subject naming FORGE_AS, and the same on its own subject naming FORGE_AS; then
//                  prints {"published":N,"permissionErrors":M} and exits 0.
// Environment: NATS_URL and the other NATS_* variables, WORKER_ID.
import { connectNats } from '../cluster/connect.js';
import { jobsKv, resultsSubject } from '../cluster/layout.js';
import { readJob } from '../cluster/jobs.js';
import { jobAblations, planUnits, type UnitRange } from '../core/index.js';
import { encodePartialVotes, encodeUnitFailure } from '../proto/index.js';
import { createExecutorFactory } from '../worker/executor-factory.js';
import { runWorker } from '../worker/nats-worker.js';
import type { ExecutorFactory, UnitResult } from '../worker/unit-types.js';

const env = process.env;
const me = env.WORKER_ID ?? 'forger';

// a test process killed on a timeout leaves no orphan behind
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(1);
}, 1000).unref();

/** Every vote of every image, for every rule, on class 0: as far from the truth as counts go. */
function forgedCounts(r: UnitRange, rules: number, classes: number): Int32Array[] {
  const n = r.imgEnd - r.imgStart;
  const span = r.ablEnd - r.ablStart;
  return Array.from({ length: rules }, () => {
    const c = new Int32Array(n * classes);
    for (let i = 0; i < n; i++) c[i * classes] = span;
    return c;
  });
}

function lyingFactory(): ExecutorFactory & { close(): Promise<void> } {
  const real = createExecutorFactory({ backend: 'onnx', threads: 1, prepThreads: 1 });
  let answered = 0;
  const factory: ExecutorFactory = async (job) => {
    const ex = await real(job);
    return {
      ...ex,
      async execute(unit: UnitRange, signal?: AbortSignal): Promise<UnitResult> {
        const r = await ex.execute(unit, signal);
        if (answered++ % 2 === 1) throw new Error('CUDA out of memory (forged)');
        return { ...r, counts: forgedCounts(unit, job.rules.length, job.numClasses) };
      },
      close: () => ex.close(),
    };
  };
  return Object.assign(factory, { close: () => real.close() });
}

async function impersonate(): Promise<void> {
  const jobId = env.FORGE_JOB!;
  const victim = env.FORGE_AS!;
  const nc = await connectNats({ name: `forger ${me}`, inboxPrefix: `_INBOX.worker.${me}` });
  let permissionErrors = 0;
  void (async () => {
    for await (const s of nc.status()) if (/permission/i.test(JSON.stringify(s))) permissionErrors++;
  })();
  const kv = await jobsKv(nc, { bindOnly: true });
  const stored = await readJob(kv, jobId);
  if (!stored) throw new Error(`no job ${jobId}`);
  const { job, meta } = stored;
  const units = planUnits(job.dataset.images, jobAblations(job), job.tile, { images: meta.unitImages, ablations: meta.unitAblations });
  let published = 0;
  for (let round = 0; round < 3; round++) {
    for (const u of units) {
      const range = { imgStart: u.imgStart, imgEnd: u.imgEnd, ablStart: u.ablStart, ablEnd: u.ablEnd };
      const votes = encodePartialVotes({
        jobId, unitId: u.id, range, counts: forgedCounts(range, job.rules.length, job.numClasses), failures: [],
        workerId: victim, backend: 'onnx', device: 'cpu', versions: {}, timings: { preprocessMs: 0, inferenceMs: 0, totalMs: 0 },
        attempt: 1, modelSha256: job.model.sha256,
      });
      const failure = encodeUnitFailure({ jobId, unitId: u.id, range, error: 'CUDA out of memory (forged)', workerId: victim, attempt: 1, kind: 'error' });
      for (const subject of [resultsSubject(jobId, victim), resultsSubject(jobId, me)]) {
        nc.publish(subject, votes);
        nc.publish(subject, failure);
        published += 2;
      }
    }
    await nc.flush();
    await new Promise((r) => setTimeout(r, 200));
  }
  await nc.flush();
  await new Promise((r) => setTimeout(r, 300));
  process.stdout.write(JSON.stringify({ published, permissionErrors }) + '\n');
  await nc.close();
}

async function main(): Promise<void> {
  if (env.FORGE_MODE === 'impersonate') return impersonate();
  const factory = lyingFactory();
  const stats = await runWorker({ executorFactory: factory, workerId: me, concurrency: 1, heartbeatIntervalMs: 500, maxFailuresInARow: 0 });
  await factory.close();
  process.stdout.write(JSON.stringify(stats) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`forger failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
