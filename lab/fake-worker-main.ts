// A worker process for the distributed tests: runWorker with the fake executor factory.
// Environment: NATS_URL (and the other NATS_* variables), WORKER_ID, WORKER_CONCURRENCY,
// WORKER_MODEL_CACHE, WORKER_RETRY_DELAY_MS, WORKER_HEARTBEAT_MS, WORKER_DRAIN_TIMEOUT_MS,
// WORKER_PULL_EXPIRES_MS, WORKER_MAX_FAILURES_IN_A_ROW, and the FAKE_* knobs.
import { runWorker } from '../worker/nats-worker.js';
import { fakeExecutorFactory, knobsFromEnv } from './fake-executor.js';

const env = process.env;

// a test process that died without cleaning up (killed on a timeout) leaves no orphan behind
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(1);
}, 1000).unref();
const opts: Parameters<typeof runWorker>[0] = {
  executorFactory: fakeExecutorFactory(knobsFromEnv(env)),
  concurrency: Number(env.WORKER_CONCURRENCY ?? 1),
  retryDelayMs: Number(env.WORKER_RETRY_DELAY_MS ?? 100),
  heartbeatIntervalMs: Number(env.WORKER_HEARTBEAT_MS ?? 500),
  reconnectTimeWaitMs: 200,
};
if (env.WORKER_ID) opts.workerId = env.WORKER_ID;
if (env.WORKER_MODEL_CACHE) opts.modelCacheDir = env.WORKER_MODEL_CACHE;
if (env.WORKER_DRAIN_TIMEOUT_MS) opts.drainTimeoutMs = Number(env.WORKER_DRAIN_TIMEOUT_MS);
if (env.WORKER_PULL_EXPIRES_MS) opts.pullExpiresMs = Number(env.WORKER_PULL_EXPIRES_MS);
if (env.WORKER_MAX_FAILURES_IN_A_ROW) opts.maxFailuresInARow = Number(env.WORKER_MAX_FAILURES_IN_A_ROW);

runWorker(opts).then(
  (stats) => {
    process.stdout.write(JSON.stringify(stats) + '\n');
    // as the CLI does: a worker that stopped itself says so in its exit status
    process.exit(stats.stoppedReason ? 2 : 0);
  },
  (e) => {
    process.stderr.write(`worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
