// Peak resident memory (issue 5.6) of the coordinator and of one worker, read from
// /proc/PID/status (VmHWM = peak RSS, VmRSS = now).
//
//   npx tsc -p tsconfig.json
//   node dist/bench/memory.js [--data data/cifar10/train] [--model models/cifar10-column4-smallcnn]
//        [--coord-limits 5000,50000] [--stand-in-workers 8] [--worker-small 500]
//        [--worker-seconds 120] [--unit-images 32] [--threads 1] [--skip-coordinator] [--skip-worker]
//        [--no-outputs]
//
// Coordinator: the real job spec of the first N images of --data (N in --coord-limits), run by
// bench/coordinator-main.js with its outputs written (images.jsonl, summary.json, certified.csv,
// plot: what `patchcert coordinator` does), the units done by --stand-in-workers stand-in workers
// (one process), so the job ends in seconds; the merged counts are checked against the direct
// computation.
// Worker: one `patchcert worker --backend onnx --threads T --prep-threads 1` (concurrency 2),
// first on a --worker-small image job run to the end, then on the whole of --data for
// --worker-seconds (VmRSS sampled every second), then drained.
import { killAll, type Run, startRun, until } from './child-runs.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { prepareJob } from '../pipeline/prepare-job.js';
import { startBenchServer } from './bench-server.js';
import { loadNow, machineLine, vmHWMkB, vmRSSkB } from './proc-stats.js';

const { values: a } = parseArgs({
  options: {
    data: { type: 'string', default: 'data/cifar10/train' },
    model: { type: 'string', default: 'models/cifar10-column4-smallcnn' },
    'coord-limits': { type: 'string', default: '5000,50000' },
    'stand-in-workers': { type: 'string', default: '8' },
    'worker-small': { type: 'string', default: '500' },
    'worker-seconds': { type: 'string', default: '120' },
    'unit-images': { type: 'string', default: '32' },
    threads: { type: 'string', default: '1' },
    'skip-coordinator': { type: 'boolean', default: false },
    'skip-worker': { type: 'boolean', default: false },
    // leave the outputs out, to see what writing them costs
    'no-outputs': { type: 'boolean', default: false },
  },
});
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/patchcert.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'patchcert-memory-'));
const MiB = (kB: number) => (kB / 1024).toFixed(0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function start(argv: string[]): Run {
  return startRun(process.execPath, argv);
}
async function jobFile(limit: number | undefined, tag: string): Promise<{ file: string; images: number }> {
  const { job } = await prepareJob({ model: resolve(a.model!), data: { format: 'imagefolder', path: resolve(a.data!), ...(limit ? { limit } : {}) }, rules: [0.3], backend: 'onnx', jobId: `mem-${tag}-${process.pid}` });
  const file = join(dir, `${job.jobId}.json`);
  writeFileSync(file, JSON.stringify(job));
  return { file, images: job.dataset.images };
}

const server = await startBenchServer();
try {
  console.log(`machine: ${machineLine()}`);
  {
    const ensure = start([here('./coordinator-main.js'), '--nats', server.url, '--ensure-only']);
    if ((await ensure.exit) !== 0) throw new Error(`creating the streams: ${ensure.err}`);
  }

  if (!a['skip-coordinator']) {
    const workers = start([here('./stand-in-workers.js'), '--nats', server.url, '--count', a['stand-in-workers']!, '--prefix', 'mem-']);
    await until(workers, /ready/);
    console.log(`\n### Coordinator peak RSS (stand-in workers: ${a['stand-in-workers']} in one process; ${a['no-outputs'] ? 'no outputs' : 'outputs written'})\n`);
    console.log('| images | units | wall s | RSS before the job (MiB) | peak RSS, VmHWM (MiB) | exact | load |');
    console.log('|---:|---:|---:|---:|---:|---|---:|');
    for (const limit of a['coord-limits']!.split(',').map(Number)) {
      const { file, images } = await jobFile(limit, `c${limit}`);
      const load = loadNow();
      const out = a['no-outputs'] ? [] : ['--output', join(dir, `out-${limit}`)];
      const c = start([here('./coordinator-main.js'), '--nats', server.url, '--job', file, ...out, '--stand-in', '--opts', JSON.stringify({ uploadModel: true, progressIntervalMs: 2000 })]);
      const code = await c.exit;
      if (code !== 0) throw new Error(`coordinator failed (${code}): ${c.out}\n${c.err.slice(-3000)}`);
      const r = JSON.parse(c.out.trim().split('\n').pop()!);
      console.log(`| ${images.toLocaleString('en-US')} | ${r.unitsTotal} | ${r.wallSeconds.toFixed(1)} | ${MiB(r.rssBeforeJobKB)} | **${MiB(r.vmHWMkB)}** | ${r.exact ? 'yes' : 'NO'} | ${load} |`);
    }
    workers.proc.kill('SIGTERM');
    await workers.exit;
  }

  if (!a['skip-worker']) {
    const threads = a.threads!;
    const coordOpts = JSON.stringify({ unitImages: Number(a['unit-images']), uploadModel: false, progressIntervalMs: 2000 });
    const workerArgv = (id: string) => [CLI, 'worker', '--nats', server.url, '--worker-id', id, '--backend', 'onnx', '--threads', threads, '--prep-threads', '1'];
    console.log(`\n### One real worker's RSS (onnx, ${a.model}, --threads ${threads} --prep-threads 1, ${a['unit-images']} images per unit)\n`);
    // a small job, to the end
    const small = await jobFile(Number(a['worker-small']), 'wsmall');
    let w = start(workerArgv('mem-small'));
    await until(w, /pulling units/);
    const load0 = loadNow();
    const c0 = start([here('./coordinator-main.js'), '--nats', server.url, '--job', small.file, '--opts', coordOpts]);
    if ((await c0.exit) !== 0) throw new Error(`coordinator failed: ${c0.err.slice(-3000)}`);
    const smallR = JSON.parse(c0.out.trim().split('\n').pop()!);
    const smallPeak = vmHWMkB(w.proc.pid!);
    const smallNow = vmRSSkB(w.proc.pid!);
    w.proc.kill('SIGTERM');
    await w.exit;
    // the whole data set, for --worker-seconds
    const big = await jobFile(undefined, 'wbig');
    w = start(workerArgv('mem-big'));
    await until(w, /pulling units/);
    const load1 = loadNow();
    const c1 = start([here('./coordinator-main.js'), '--nats', server.url, '--job', big.file, '--opts', coordOpts]);
    const samples: { t: number; rss: number }[] = [];
    const t0 = Date.now();
    const seconds = Number(a['worker-seconds']);
    while (Date.now() - t0 < seconds * 1000) {
      await sleep(1000);
      samples.push({ t: (Date.now() - t0) / 1000, rss: vmRSSkB(w.proc.pid!) });
    }
    const bigPeak = vmHWMkB(w.proc.pid!);
    c1.proc.kill('SIGKILL');
    await c1.exit;
    w.proc.kill('SIGTERM');
    await w.exit;
    const units = /(\d+) units done/.exec(w.err)?.[1] ?? '?';
    console.log('| job | images in job | worked | units done | RSS at end (MiB) | peak RSS, VmHWM (MiB) | load at start |');
    console.log('|---|---:|---|---:|---:|---:|---:|');
    console.log(`| small | ${small.images} | to the end, ${smallR.wallSeconds.toFixed(1)} s | ${smallR.unitsTotal} | ${MiB(smallNow)} | **${MiB(smallPeak)}** | ${load0} |`);
    console.log(`| whole data set | ${big.images.toLocaleString('en-US')} | first ${seconds} s | ${units} | ${MiB(samples[samples.length - 1]!.rss)} | **${MiB(bigPeak)}** | ${load1} |`);
    const step = Math.max(1, Math.floor(samples.length / 12));
    console.log(`\nVmRSS of the worker on the whole-data-set job (MiB), every ${step} s:\n`);
    console.log(`| s | ${samples.filter((_, i) => i % step === step - 1).map((s) => s.t.toFixed(0)).join(' | ')} |`);
    console.log(`|---|${samples.filter((_, i) => i % step === step - 1).map(() => '---:').join('|')}|`);
    console.log(`| MiB | ${samples.filter((_, i) => i % step === step - 1).map((s) => MiB(s.rss)).join(' | ')} |`);
  }
  console.log(`\nend: ${machineLine()}`);
} finally {
  killAll();
  await server.cleanup();
  rmSync(dir, { recursive: true, force: true });
}
