// A coordinator process for the scaling and memory benchmarks (it may run in another network
// namespace, and its peak RSS must be its own): runCoordinator on a job file, then one JSON line
// on stdout with the outcome, its CPU seconds and peak RSS.
//
//   node dist/bench/coordinator-main.js --nats URL --job job.json [--opts '{"unitImages":32}']
//        [--output DIR]   write the job's outputs (images.jsonl, summary.json, ...) like certify
//        [--stand-in]     check the merged counts against the stand-in executor's direct computation
//   node dist/bench/coordinator-main.js --nats URL --ensure-only
//        creates the streams and the jobs bucket (workers started before any coordinator wait for them)
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { runCoordinator } from '../coordinator/coordinator.js';
import { connectNats } from '../cluster/connect.js';
import { ensureStreams, jobsKv } from '../cluster/layout.js';
import { indexDataset } from '../worker/datasets/index.js';
import type { DatasetSpec } from '../worker/types.js';
import { cpuSeconds, vmHWMkB, vmRSSkB } from './proc-stats.js';
import { sameCounts, standInExpected } from '../lab/stand-in-executor.js';

const { values: a } = parseArgs({
  options: {
    nats: { type: 'string' },
    job: { type: 'string' },
    opts: { type: 'string', default: '{}' },
    output: { type: 'string' },
    'stand-in': { type: 'boolean', default: false },
    'ensure-only': { type: 'boolean', default: false },
  },
});
if (a['ensure-only'] && a.nats) {
  const nc = await connectNats({ servers: a.nats.split(',') });
  await ensureStreams(await jetstreamManager(nc));
  await jobsKv(nc);
  await nc.close();
  process.exit(0);
}
if (!a.nats || !a.job) throw new Error('usage: coordinator-main --nats URL --job FILE [--opts JSON] [--output DIR] [--stand-in]');

// an orphan (its benchmark killed) must not linger
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(1);
}, 1000).unref();

const job = JSON.parse(readFileSync(a.job, 'utf8'));
const output = a.output ? { dir: a.output, items: (await indexDataset(job.dataset.spec as DatasetSpec, job.geometry)).items } : undefined;
const rssBefore = vmRSSkB();
const r = await runCoordinator({
  job,
  servers: a.nats.split(','),
  log: (s) => process.stderr.write(`[coordinator] ${s}\n`),
  ...(output ? { output } : {}),
  ...JSON.parse(a.opts!),
});
const exact = a['stand-in'] ? sameCounts(r.accumulator, standInExpected(job)) && r.failedUnits.length === 0 : undefined;
process.stdout.write(
  JSON.stringify({
    state: r.state,
    unitsTotal: r.unitsTotal,
    mergedUnits: r.accumulator.mergedUnits,
    failedUnits: r.failedUnits.length,
    rejected: r.rejected.length,
    duplicates: r.duplicates,
    workers: r.workers,
    wallSeconds: r.wallSeconds,
    ablationsRun: r.ablationsRun,
    exact,
    cpuSeconds: cpuSeconds('self'),
    rssBeforeJobKB: rssBefore,
    vmHWMkB: vmHWMkB(),
  }) + '\n',
);
process.exit(r.state === 'done' && exact !== false ? 0 : 1);
