// Scaling across "hosts" (issue 5.5): nats-server, the coordinator and each worker in its own
// network namespace (lab/netns.ts; needs root), as in test/distributed/netns-scaling.test.ts.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/scaling-netns.js [--stand-in 1,2,4,8,16] [--units 320] [--unit-ms 100] [--busy]
//        [--real 1,2] [--model models/cifar10-column4-smallcnn] [--data data/cifar10/test]
//        [--limit 500] [--unit-images 32] [--threads 1] [--skip-real] [--skip-stand-in]
//
// Stand-in: every unit costs --unit-ms (a sleep: the worker's accelerator is elsewhere; --busy
// holds the worker's CPU instead), one image x all ablations per unit, so the ideal wall time is
// units x unit-ms / workers. Real: `patchcert worker --backend onnx --threads T --prep-threads 1`
// on --limit images of --data (ImageFolder), --unit-images images per unit. Each worker process
// is started and pulling before the coordinator starts (the real worker still loads its model
// and indexes the data set on its first unit: that is in its figure). Wall = the coordinator's
// runCoordinator time (job creation to the last merge), taken inside the coordinator's namespace.
import { killAll, type Run, startRun, until } from './child-runs.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { jobAblations } from '../core/index.js';
import { prepareJob } from '../pipeline/prepare-job.js';
import { NatsServer } from '../lab/nats-server.js';
import { NetLab, netnsUnavailable } from '../lab/netns.js';
import { loadNow, machineLine } from './proc-stats.js';
import { makeStandInJob } from '../lab/stand-in-executor.js';

const { values: a } = parseArgs({
  options: {
    'stand-in': { type: 'string', default: '1,2,4,8,16' },
    units: { type: 'string', default: '320' },
    'unit-ms': { type: 'string', default: '100' },
    busy: { type: 'boolean', default: false },
    real: { type: 'string', default: '1,2' },
    model: { type: 'string', default: 'models/cifar10-column4-smallcnn' },
    data: { type: 'string', default: 'data/cifar10/test' },
    limit: { type: 'string', default: '500' },
    'unit-images': { type: 'string', default: '32' },
    threads: { type: 'string', default: '1' },
    'skip-real': { type: 'boolean', default: false },
    'skip-stand-in': { type: 'boolean', default: false },
  },
});
const why = netnsUnavailable();
if (why) {
  console.error(`scaling-netns: ${why}`);
  process.exit(2);
}
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/patchcert.js', import.meta.url));
const list = (s: string) => s.split(',').map(Number);
const standInCounts = a['skip-stand-in'] ? [] : list(a['stand-in']!);
const realCounts = a['skip-real'] ? [] : list(a.real!);
const hosts = Math.max(1, ...standInCounts, ...realCounts);
const dir = mkdtempSync(join(tmpdir(), 'patchcert-scaling-'));
const lab = NetLab.create(['nats', 'coord', ...Array.from({ length: hosts }, (_, i) => `w${i + 1}`)]);
let server: NatsServer | undefined;

function start(host: string, argv: string[]): Run {
  return startRun(lab.exec(host)[0]!, [...lab.exec(host).slice(1), process.execPath, ...argv]);
}


async function coordinate(jobFile: string, opts: Record<string, unknown>, standIn: boolean): Promise<{ wallSeconds: number; exact?: boolean; workers: string[]; unitsTotal: number; state: string }> {
  const c = start('coord', [here('./coordinator-main.js'), '--nats', server!.url, '--job', jobFile, '--opts', JSON.stringify(opts), ...(standIn ? ['--stand-in'] : [])]);
  const code = await c.exit;
  if (code !== 0) throw new Error(`coordinator failed (${code}): ${c.out}\n${c.err.slice(-3000)}`);
  return JSON.parse(c.out.trim().split('\n').pop()!);
}

async function stopAll(runs: Run[]): Promise<void> {
  for (const r of runs) r.proc.kill('SIGTERM');
  await Promise.race([Promise.all(runs.map((r) => r.exit)), new Promise((res) => setTimeout(res, 15_000))]);
  for (const r of runs) if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
}

try {
  console.log(`machine: ${machineLine()}`);
  server = await NatsServer.start({ host: lab.addr('nats'), port: 4222, monitorPort: 8222, wrap: lab.exec('nats'), readyByLog: true });
  const ensure = start('coord', [here('./coordinator-main.js'), '--nats', server.url, '--ensure-only']);
  if ((await ensure.exit) !== 0) throw new Error(`creating the streams: ${ensure.err}`);

  if (standInCounts.length) {
    const units = Number(a.units);
    const unitMs = Number(a['unit-ms']);
    console.log(`\n### Stand-in executor, ${units} units of 1 image x 32 ablations, ${unitMs} ms per unit (${a.busy ? 'busy-wait' : 'sleep'}), one worker process per namespace\n`);
    console.log('| workers | wall s | ideal s | speed-up vs 1 | efficiency (speed-up / workers) | of ideal | workers that merged | exact | load |');
    console.log('|---:|---:|---:|---:|---:|---:|---:|---|---:|');
    let base = 0;
    for (const n of standInCounts) {
      const runs = Array.from({ length: n }, (_, i) =>
        start(`w${i + 1}`, [here('./stand-in-workers.js'), '--nats', server!.url, '--count', '1', '--prefix', `s${n}w${i + 1}-`, '--unit-ms', String(unitMs), ...(a.busy ? ['--busy'] : [])]),
      );
      await Promise.all(runs.map((r) => until(r, /ready 1/)));
      const job = makeStandInJob(join(dir, 'model'), { jobId: `scale-s${n}-${process.pid}`, images: units });
      const jobFile = join(dir, `job-s${n}.json`);
      writeFileSync(jobFile, JSON.stringify(job));
      const load = loadNow();
      const r = await coordinate(jobFile, { unitImages: 1, unitAblations: 32, uploadModel: false, progressIntervalMs: 500 }, true);
      await stopAll(runs);
      if (!r.exact) throw new Error(`stand-in job with ${n} workers: counts differ from the direct computation`);
      if (n === 1) base = r.wallSeconds;
      const ideal = (units * unitMs) / 1000 / n;
      const speedup = base ? base / r.wallSeconds : NaN;
      console.log(`| ${n} | ${r.wallSeconds.toFixed(2)} | ${ideal.toFixed(2)} | ${speedup.toFixed(2)} | ${((100 * speedup) / n).toFixed(0)}% | ${((100 * ideal) / r.wallSeconds).toFixed(0)}% | ${r.workers.length} | ${r.exact ? 'yes' : 'NO'} | ${load} |`);
    }
  }

  if (realCounts.length) {
    const limit = Number(a.limit);
    const threads = a.threads!;
    console.log(`\n### Real inference: onnx, ${a.model}, ${a.data} (first ${limit} images), ${a['unit-images']} images per unit, each worker --threads ${threads} --prep-threads 1 --concurrency 2\n`);
    console.log('| workers | units | wall s | ablations/s | speed-up vs 1 | efficiency | workers that merged | load |');
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
    let base = 0;
    for (const n of realCounts) {
      const { job } = await prepareJob({ model: resolve(a.model!), data: { format: 'imagefolder', path: resolve(a.data!), limit }, rules: [0.3], backend: 'onnx', jobId: `scale-r${n}-${process.pid}` });
      const jobFile = join(dir, `job-r${n}.json`);
      writeFileSync(jobFile, JSON.stringify(job));
      const runs = Array.from({ length: n }, (_, i) =>
        start(`w${i + 1}`, [CLI, 'worker', '--nats', server!.url, '--worker-id', `r${n}w${i + 1}`, '--backend', 'onnx', '--threads', threads, '--prep-threads', '1']),
      );
      await Promise.all(runs.map((r) => until(r, /pulling units/)));
      const load = loadNow();
      const r = await coordinate(jobFile, { unitImages: Number(a['unit-images']), uploadModel: false, progressIntervalMs: 1000 }, false);
      await stopAll(runs);
      if (r.state !== 'done') throw new Error(`real job with ${n} workers ended ${r.state}`);
      if (n === 1) base = r.wallSeconds;
      const speedup = base ? base / r.wallSeconds : NaN;
      console.log(`| ${n} | ${r.unitsTotal} | ${r.wallSeconds.toFixed(1)} | ${((limit * jobAblations(job)) / r.wallSeconds).toFixed(0)} | ${speedup.toFixed(2)} | ${((100 * speedup) / n).toFixed(0)}% | ${r.workers.length} | ${load} |`);
    }
  }
  console.log(`\nend: ${machineLine()}`);
} finally {
  killAll();
  await server?.cleanup();
  lab.destroySync();
  rmSync(dir, { recursive: true, force: true });
}
