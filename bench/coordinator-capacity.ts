// Coordinator capacity (issue 5.4): how many unit results per second the real coordinator
// (runCoordinator) merges, with a real nats-server and the stand-in executor, by images per unit
// and by simulated worker count. Every run's merged counts are checked against the direct
// computation (standInExpected); a mismatch fails the benchmark.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/coordinator-capacity.js [--mode sizes,backlog,live] [--unit-images 1,4,16,64]
//        [--workers 10,100,1000] [--processes 2] [--units 10000] [--live-units 4000]
//        [--live-unit-images 1,16] [--ablations 32] [--classes 10] [--rules 5] [--unit-ms 0]
//
// sizes    encoded PartialVotes bytes for --unit-images x --ablations x --classes x --rules.
// backlog  the coordinator's own ceiling: --units results are first published straight to the
//          results stream (as workers would), then runCoordinator merges them all; nothing else
//          runs meanwhile.
// live     the whole loop: --workers simulated workers (runWorker loops with the stand-in
//          executor, --unit-ms per unit), spread over --processes processes, pull units that the
//          coordinator publishes and publish results that it merges. Also reports each party's
//          CPU time per unit (coordinator = this process, workers, nats-server).
// Merge rate is taken between the first progress tick with a merged unit and the end of the job
// (progress every 100 ms), so stream and consumer set-up is left out; "wall" includes it.
// Profile with: node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/coordinator-capacity.js ...
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { type JobSpec, jobAblations, planUnits } from '../core/index.js';
import { type CoordinatorResult, runCoordinator } from '../coordinator/coordinator.js';
import { RESULTS_STREAM, ensureStreams, jobsKv, resultMsgId, resultsSubject } from '../cluster/layout.js';
import { encodePartialVotes } from '../proto/index.js';
import { startBenchServer } from './bench-server.js';
import { cpuSeconds, loadNow, machineLine } from './proc-stats.js';
import { makeStandInJob, sameCounts, standInCounts, standInExpected } from '../lab/stand-in-executor.js';

const { values: a } = parseArgs({
  options: {
    mode: { type: 'string', default: 'sizes,backlog,live' },
    'unit-images': { type: 'string', default: '1,4,16,64' },
    workers: { type: 'string', default: '10,100,1000' },
    processes: { type: 'string', default: '2' },
    units: { type: 'string', default: '10000' },
    'live-units': { type: 'string', default: '4000' },
    'live-unit-images': { type: 'string', default: '1,16' },
    ablations: { type: 'string', default: '32' },
    classes: { type: 'string', default: '10' },
    rules: { type: 'string', default: '5' },
    'unit-ms': { type: 'string', default: '0' },
  },
});
const list = (s: string) => s.split(',').map(Number);
const modes = new Set(a.mode!.split(','));
const ablations = Number(a.ablations);
const numClasses = Number(a.classes);
const numRules = Number(a.rules);
const dir = mkdtempSync(join(tmpdir(), 'patchcert-capacity-'));
const WORKERS_MAIN = fileURLToPath(new URL('./stand-in-workers.js', import.meta.url));
const fmt = (x: number, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
let seq = 0;

function job(images: number, tag: string): JobSpec {
  return makeStandInJob(join(dir, 'model'), { jobId: `cap-${tag}-${process.pid}-${++seq}`, images, ablations, numClasses, rules: numRules });
}

/** A PartialVotes message as a worker would send it (realistic ids and run info). */
function encodeFor(j: JobSpec, u: { id: string; imgStart: number; imgEnd: number; ablStart: number; ablEnd: number }, workerId: string): Uint8Array {
  const range = { imgStart: u.imgStart, imgEnd: u.imgEnd, ablStart: u.ablStart, ablEnd: u.ablEnd };
  return encodePartialVotes({
    jobId: j.jobId,
    unitId: u.id,
    range,
    counts: standInCounts(j, range),
    failures: [],
    workerId,
    backend: 'onnx',
    device: 'cpu',
    versions: { 'onnxruntime-node': '1.30.0', node: process.version },
    timings: { preprocessMs: 812.4, inferenceMs: 2310.7, totalMs: 3190.2 },
    attempt: 1,
    modelSha256: j.model.sha256,
  });
}

interface Timed {
  r: CoordinatorResult;
  mergeRate: number;
  exact: boolean;
  coordCpu: number;
}

async function coordinate(servers: string, j: JobSpec, unitImages: number): Promise<Timed> {
  const ticks: { t: number; done: number }[] = [];
  const cpu0 = process.cpuUsage();
  const r = await runCoordinator({
    job: j,
    servers,
    unitImages,
    unitAblations: ablations,
    uploadModel: false,
    progressIntervalMs: 100,
    onProgress: (p) => ticks.push({ t: performance.now(), done: p.unitsDone }),
  });
  const cpu = process.cpuUsage(cpu0);
  const first = ticks.find((x) => x.done > 0);
  const last = ticks[ticks.length - 1]!;
  const mergeRate = first && last.t > first.t ? (last.done - first.done) / ((last.t - first.t) / 1000) : NaN;
  if (r.state !== 'done') throw new Error(`job ${j.jobId} ended ${r.state}`);
  const exact = sameCounts(r.accumulator, standInExpected(j)) && r.failedUnits.length === 0 && r.rejected.length === 0;
  if (!exact) throw new Error(`job ${j.jobId}: merged counts differ from the direct computation`);
  return { r, mergeRate, exact, coordCpu: (cpu.user + cpu.system) / 1e6 };
}

console.log(`machine: ${machineLine()}`);
const server = await startBenchServer();
const servers = server.url;
try {
  {
    // what a coordinator creates on its first job: workers started before it wait for these
    const nc = await connect({ servers });
    await ensureStreams(await jetstreamManager(nc));
    await jobsKv(nc);
    await nc.close();
  }
  if (modes.has('sizes')) {
    console.log(`\n### PartialVotes size (${ablations} ablations x ${numClasses} classes x ${numRules} rules per image)\n`);
    console.log('| images per unit | counts | encoded bytes | bytes per image |');
    console.log('|---:|---:|---:|---:|');
    for (const n of list(a['unit-images']!)) {
      const j = job(n, 'size');
      const u = planUnits(n, ablations, j.tile, { images: n, ablations })[0]!;
      const b = encodeFor(j, u, 'worker-host-12345').length;
      console.log(`| ${n} | ${fmt(n * numClasses * numRules)} | ${fmt(b)} | ${fmt(b / n, 1)} |`);
    }
  }

  if (modes.has('backlog')) {
    const units = Number(a.units);
    console.log(`\n### Coordinator merge ceiling (backlog of ${fmt(units)} results, no workers running)\n`);
    console.log(`| images per unit | results | bytes/result in stream | publish results/s | merge results/s | merge images/s | wall s | coordinator CPU s | exact | load |`);
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|');
    const nc = await connect({ servers });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    for (const n of list(a['unit-images']!)) {
      const j = job(units * n, `b${n}`);
      const plan = planUnits(j.dataset.images, jobAblations(j), j.tile, { images: n, ablations });
      const before = await jsm.streams.info(RESULTS_STREAM);
      const t0 = performance.now();
      const BATCH = 512;
      for (let i = 0; i < plan.length; i += BATCH) {
        await Promise.all(
          plan.slice(i, i + BATCH).map((u, k) => {
            const w = `sim-${(i + k) % 100}`;
            return js.publish(resultsSubject(j.jobId, w), encodeFor(j, u, w), { msgID: resultMsgId(j.jobId, u.id, w, 1, 'votes') });
          }),
        );
      }
      const pubRate = plan.length / ((performance.now() - t0) / 1000);
      const after = await jsm.streams.info(RESULTS_STREAM);
      const bytes = (after.state.bytes - before.state.bytes) / (after.state.messages - before.state.messages);
      const load = loadNow();
      const c = await coordinate(servers, j, n);
      console.log(`| ${n} | ${fmt(plan.length)} | ${fmt(bytes)} | ${fmt(pubRate)} | **${fmt(c.mergeRate)}** | ${fmt(c.mergeRate * n)} | ${c.r.wallSeconds.toFixed(2)} | ${c.coordCpu.toFixed(2)} | ${c.exact ? 'yes' : 'NO'} | ${load} |`);
    }
    await nc.close();
  }

  if (modes.has('live')) {
    const procs = Number(a.processes);
    const liveUnits = Number(a['live-units']);
    console.log(`\n### Live: simulated workers (stand-in executor, ${a['unit-ms']} ms per unit) in ${procs} processes, coordinator in this process\n`);
    console.log('| workers | images per unit | results | merge results/s | wall s | CPU ms per result: coordinator / workers / nats-server | exact | load |');
    console.log('|---:|---:|---:|---:|---:|---|---|---:|');
    for (const w of list(a.workers!)) {
      const children: ChildProcess[] = [];
      const ready: Promise<void>[] = [];
      for (let p = 0; p < procs; p++) {
        const count = Math.floor(w / procs) + (p < w % procs ? 1 : 0);
        if (count === 0) continue;
        const c = spawn(process.execPath, [WORKERS_MAIN, '--nats', servers, '--count', String(count), '--prefix', `w${w}p${p}-`, '--unit-ms', a['unit-ms']!], { stdio: ['ignore', 'pipe', 'inherit'] });
        children.push(c);
        let out = '';
        ready.push(
          new Promise((res, rej) => {
            c.stdout!.on('data', (d) => {
              out += d;
              if (out.includes('ready')) res();
            });
            c.once('exit', (code) => rej(new Error(`worker process exited (${code}) before it was ready: ${out}`)));
          }),
        );
      }
      const tStart = performance.now();
      await Promise.all(ready);
      const startS = (performance.now() - tStart) / 1000;
      for (const n of list(a['live-unit-images']!)) {
        const j = job(liveUnits * n, `l${w}-${n}`);
        const wc0 = children.reduce((s, c) => s + cpuSeconds(c.pid!), 0);
        const sc0 = cpuSeconds(server.pid!);
        const load = loadNow();
        const c = await coordinate(servers, j, n);
        const wc = children.reduce((s, ch) => s + cpuSeconds(ch.pid!), 0) - wc0;
        const sc = cpuSeconds(server.pid!) - sc0;
        const per = (s: number) => ((s * 1000) / c.r.unitsTotal).toFixed(2);
        console.log(`| ${fmt(w)} | ${n} | ${fmt(c.r.unitsTotal)} | **${fmt(c.mergeRate)}** | ${c.r.wallSeconds.toFixed(2)} | ${per(c.coordCpu)} / ${per(wc)} / ${per(sc)} | ${c.exact ? 'yes' : 'NO'} (${c.r.workers.length} workers contributed) | ${load} |`);
      }
      const exits = children.map((c) => new Promise((res) => c.once('exit', res)));
      for (const c of children) c.kill('SIGTERM');
      await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 20_000))]);
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      process.stderr.write(`(${w} workers started in ${startS.toFixed(1)} s)\n`);
    }
  }
  console.log(`\nend: ${machineLine()}`);
} finally {
  await server.cleanup();
  rmSync(dir, { recursive: true, force: true });
}
