// One process hosting many simulated workers: `--count` runWorker loops, each with its own NATS
// connection and worker id, all running the stand-in executor (lab/stand-in-executor.ts).
// Started by the capacity and scaling benchmarks; by hand:
//
//   node dist/bench/stand-in-workers.js --nats nats://127.0.0.1:4222 --count 100 [--prefix w]
//        [--unit-ms 0] [--image-ms 0] [--busy] [--concurrency 1] [--heartbeat-ms 5000]
//
// Prints "ready N" once every loop is pulling, and on SIGTERM/SIGINT drains them all and prints
// one JSON line: units done, CPU seconds, peak RSS (VmHWM, kB).
import { setMaxListeners } from 'node:events';
import { parseArgs } from 'node:util';
import { runWorker, type WorkerStats } from '../worker/nats-worker.js';
import { vmHWMkB } from './proc-stats.js';
import { standInExecutorFactory } from '../lab/stand-in-executor.js';

const { values: a } = parseArgs({
  options: {
    nats: { type: 'string', default: process.env.NATS_URL ?? 'nats://127.0.0.1:4222' },
    count: { type: 'string', default: '1' },
    prefix: { type: 'string', default: `w${process.pid}-` },
    'unit-ms': { type: 'string', default: '0' },
    'image-ms': { type: 'string', default: '0' },
    busy: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '1' },
    'heartbeat-ms': { type: 'string', default: '5000' },
  },
});

// an orphan (its benchmark killed) must not keep pulling units
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(1);
}, 1000).unref();

const count = Number(a.count);
const stop = new AbortController();
// every loop listens on the one signal
setMaxListeners(count + 10, stop.signal);
const factory = standInExecutorFactory({ unitMs: Number(a['unit-ms']), imageMs: Number(a['image-ms']), busy: a.busy! });
let pulling = 0;
const loops: Promise<WorkerStats>[] = [];
for (let i = 0; i < count; i++) {
  loops.push(
    runWorker({
      servers: a.nats!.split(','),
      executorFactory: factory,
      workerId: `${a.prefix}${i}`,
      concurrency: Number(a.concurrency),
      heartbeatIntervalMs: Number(a['heartbeat-ms']),
      // one signal handler for the whole process, not one per loop
      handleSignals: false,
      signal: stop.signal,
      drainTimeoutMs: 5000,
      log: (s) => {
        if (s.startsWith('pulling units') && ++pulling === count) process.stdout.write(`ready ${count}\n`);
        else if (!s.startsWith('pulling units') && !s.startsWith('drain')) process.stderr.write(`[${a.prefix}${i}] ${s}\n`);
      },
    }),
  );
}
const onSignal = () => stop.abort();
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
const stats = await Promise.allSettled(loops);
const cpu = process.cpuUsage();
const done = stats.reduce((s, r) => s + (r.status === 'fulfilled' ? r.value.unitsDone : 0), 0);
const failed = stats.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
process.stdout.write(JSON.stringify({ workers: count, unitsDone: done, failedLoops: failed.slice(0, 3), cpuSeconds: (cpu.user + cpu.system) / 1e6, vmHWMkB: vmHWMkB() }) + '\n');
process.exit(0);
