// Worker efficiency (issue 5.2): single-node certify's ablations/s as a fraction of the raw backend's
// forward passes/s at the same batch (the job's tile) and thread count. Not a test.
//
//   node dist/bench/worker-efficiency.js --model models/cifar10-column4 --data data/cifar10/test \
//        [--format imagefolder] [--limit 1000] [--threads 2] [--prep-threads 1] [--in-flight 1,2]
//        [--tile-images N] [--seconds 10] [--backend onnx] [--serialize on,off]
//
// For each --in-flight value it runs certify (θ = 0.3 + argmax), then times backend.run on a batch of
// the tile's size for --seconds. Reported per run:
//   run-phase rate   ablations / (wall time from "backend ready" to the end), i.e. without model
//                    loading and data set indexing, which a long job amortises;
//   efficiency       run-phase rate / raw passes/s;
//   inference busy   summed backend.run time / run-phase wall (over 100% when units overlap calls);
//   prep stall       summed time the executor waited for a preprocessed tile.
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { certifyLocal } from '../pipeline/certify-local.js';
import { detectFormat, parseRules } from '../cli/options.js';
import { createBackend } from '../worker/backends/index.js';
import { loadModel } from '../worker/model.js';
import type { BackendName, DatasetFormat } from '../worker/types.js';
import type { UnitResult } from '../worker/unit-types.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    format: { type: 'string' },
    limit: { type: 'string', default: '1000' },
    threads: { type: 'string', default: '2' },
    'prep-threads': { type: 'string', default: '1' },
    'in-flight': { type: 'string', default: '1,2' },
    serialize: { type: 'string', default: 'on' },
    'tile-images': { type: 'string' },
    seconds: { type: 'string', default: '10' },
    backend: { type: 'string', default: 'onnx' },
  },
});
if (!values.model || !values.data) {
  console.error('usage: node dist/bench/worker-efficiency.js --model DIR --data PATH [--limit N] [--threads N] [--in-flight 1,2]');
  process.exit(1);
}
const threads = Number(values.threads);
const backendName = values.backend as BackendName;
const data = resolve(values.data);
const format = (values.format ?? detectFormat(data)) as DatasetFormat;

async function rawPassesPerSecond(batch: number, seconds: number): Promise<{ rate: number; device: string }> {
  const model = await loadModel(resolve(values.model!));
  const { backend } = await createBackend(model, backendName, { threads });
  try {
    const [a, b, c] = backend.inputShape ?? [0, 0, 0];
    const x = new Float32Array(batch * a * b * c);
    for (let i = 0; i < x.length; i++) x[i] = Math.random() < 0.875 ? 0 : Math.random(); // mostly ablated, like real inputs
    for (let w = 0; w < 3; w++) await backend.run(x, batch);
    let n = 0;
    const t0 = performance.now();
    while ((performance.now() - t0) / 1000 < seconds || n < 5) {
      await backend.run(x, batch);
      n++;
    }
    return { rate: (n * batch) / ((performance.now() - t0) / 1000), device: backend.device };
  } finally {
    await backend.dispose();
  }
}

console.log(`host: ${cpus()[0]?.model ?? 'cpu'} x ${cpus().length}, node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const rows: string[] = [];
const configs = values['in-flight'].split(',').map(Number).flatMap((inFlight) =>
  values.serialize.split(',').map((s) => ({ inFlight, serialize: s !== 'off' })));
for (const { inFlight, serialize } of configs) {
  const out = await mkdtemp(join(tmpdir(), 'patchcert-eff-'));
  const units: UnitResult[] = [];
  let tReady = 0;
  const t0 = performance.now();
  try {
    const res = await certifyLocal({
      model: resolve(values.model),
      data: { format, path: data, limit: Number(values.limit) },
      rules: parseRules('0.3'),
      backend: backendName,
      out,
      threads,
      prepThreads: Number(values['prep-threads']),
      unitsInFlight: inFlight,
      serializeInference: serialize,
      ...(values['tile-images'] ? { tile: { images: Number(values['tile-images']) } } : {}),
      onBackend: () => {
        tReady = performance.now();
      },
      onUnitResult: (r) => units.push(r),
    });
    const tEnd = performance.now();
    const abl = res.summary.run.ablationsRun;
    const runWall = (tEnd - tReady) / 1000;
    const rate = abl / runWall;
    const batch = res.job.tile.images * res.job.tile.ablations;
    const raw = await rawPassesPerSecond(batch, Number(values.seconds));
    const infer = units.reduce((s, u) => s + u.inferenceMs, 0) / 1000;
    const stall = units.reduce((s, u) => s + u.preprocessMs, 0) / 1000;
    rows.push(
      `| ${inFlight} | ${serialize ? 'yes' : 'no'} | ${res.job.tile.images}x${res.job.tile.ablations} (${batch}) | ${res.summary.images} | ${((tEnd - t0) / 1000).toFixed(1)} | ${runWall.toFixed(1)} | ${rate.toFixed(0)} | ${raw.rate.toFixed(0)} | **${((100 * rate) / raw.rate).toFixed(1)}%** | ${((100 * infer) / runWall).toFixed(0)}% | ${stall.toFixed(2)} s |`,
    );
    console.log(`in-flight ${inFlight}, serialized ${serialize}: ${rate.toFixed(0)} ablations/s in the run phase vs raw ${raw.rate.toFixed(0)} passes/s on ${raw.device}`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
console.log(`\nmodel ${values.model}, ${backendName} ${threads} thread(s), ${values['prep-threads']} preprocessing thread(s), load after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
console.log('| units in flight | one backend call at a time | tile (batch) | images | total wall s | run-phase s | run-phase ablations/s | raw passes/s | efficiency | inference busy | prep stall |');
console.log('|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(r);
