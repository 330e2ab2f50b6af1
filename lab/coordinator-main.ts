// A coordinator process for the distributed tests and benchmarks (so one can SIGKILL it): runs
// runCoordinator on the job in COORD_JOB_FILE with the options in COORD_OPTS (JSON) and writes
// the outcome (counts included) to COORD_RESULT_FILE. NATS_URL etc. from the environment.
import { readFileSync, writeFileSync } from 'node:fs';
import { runCoordinator } from '../coordinator/coordinator.js';
import { resultToJson } from './results.js';

const env = process.env;

// a test process that died without cleaning up (killed on a timeout) leaves no orphan behind
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(1);
}, 1000).unref();
const job = JSON.parse(readFileSync(env.COORD_JOB_FILE!, 'utf8'));
const extra = env.COORD_OPTS ? JSON.parse(env.COORD_OPTS) : {};
runCoordinator({ job, reconnectTimeWaitMs: 200, log: (s) => process.stderr.write(`[coordinator] ${s}\n`), ...extra }).then(
  (r) => {
    writeFileSync(env.COORD_RESULT_FILE!, JSON.stringify(resultToJson(r)));
    process.exit(0);
  },
  (e) => {
    process.stderr.write(`coordinator failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
