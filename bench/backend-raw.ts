// Raw backend throughput: forward passes (encoded ablations) per second per backend and batch size.
// Not a test. Usage:
//   node dist/bench/backend-raw.js [model dir or manifest] [--backends onnx,tfjs-wasm] [--batches 1,32,64,128]
//                                  [--seconds 2] [--threads N] [--warmup 2] [--min-iter 3] [--json out.json]
// (--warmup 1 --min-iter 1 for large models, where one batch of 128 takes tens of seconds)
// Default model: test/fixtures/models/tiny-gray; default backends: every one that loads here.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALL_BACKEND_NAMES as BACKEND_NAMES, backendFormat, createBackend, isBackendName } from '../worker/backends/index.js';
import { loadModel } from '../worker/model.js';
import type { BackendName } from '../worker/types.js';

interface Row {
  backend: BackendName;
  device: string;
  batch: number;
  iterations: number;
  msPerBatch: number;
  passesPerSec: number;
}

function parseArgs(argv: string[]) {
  const opts = { model: '', backends: [...BACKEND_NAMES] as BackendName[], batches: [1, 32, 64, 128], seconds: 2, threads: undefined as number | undefined, warmup: 2, minIter: 3, json: '' };
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--backends') {
      const names = val().split(',');
      for (const n of names) if (!isBackendName(n)) throw new Error(`unknown backend ${n} (expected ${BACKEND_NAMES.join(', ')})`);
      opts.backends = names as BackendName[];
    } else if (a === '--batches') opts.batches = val().split(',').map(Number);
    else if (a === '--seconds') opts.seconds = Number(val());
    else if (a === '--threads') opts.threads = Number(val());
    else if (a === '--warmup') opts.warmup = Number(val());
    else if (a === '--min-iter') opts.minIter = Number(val());
    else if (a === '--json') opts.json = val();
    else if (a === '--help' || a === '-h') {
      console.log('usage: node dist/bench/backend-raw.js [model] [--backends a,b] [--batches 1,32,64,128] [--seconds 2] [--threads N] [--warmup 2] [--min-iter 3] [--json file]');
      process.exit(0);
    } else rest.push(a);
  }
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  opts.model = rest[0] ?? path.join(root, 'test', 'fixtures', 'models', 'tiny-gray');
  if (opts.batches.some((b) => !Number.isInteger(b) || b < 1)) throw new Error('--batches must be positive integers');
  if (!Number.isInteger(opts.warmup) || opts.warmup < 0) throw new Error('--warmup must be a non-negative integer');
  if (!Number.isInteger(opts.minIter) || opts.minIter < 1) throw new Error('--min-iter must be a positive integer');
  return opts;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const model = await loadModel(opts.model);
  const { height, width, channels } = model.manifest.input;
  console.log(`model ${model.manifest.name} (${model.manifestPath}): ${height}x${width}x${channels}, ${model.manifest.encoding}, ${model.manifest.classes.length} classes`);
  console.log(`host: ${os.cpus()[0]?.model ?? 'cpu'} x ${os.cpus().length}, node ${process.versions.node}; >= ${opts.seconds}s per cell\n`);
  const rows: Row[] = [];
  const skipped: Array<{ backend: string; reason: string }> = [];
  for (const name of opts.backends) {
    const fmt = backendFormat(name);
    if (!model.formats[fmt]) {
      skipped.push({ backend: name, reason: `no ${fmt} format in the manifest` });
      continue;
    }
    let backend;
    try {
      backend = (await createBackend(model, name, opts.threads !== undefined ? { threads: opts.threads } : {})).backend;
    } catch (e) {
      skipped.push({ backend: name, reason: (e as Error).message });
      continue;
    }
    const per = backend.inputShape ? backend.inputShape[0] * backend.inputShape[1] * backend.inputShape[2] : 0;
    for (const batch of opts.batches) {
      const x = new Float32Array(batch * per);
      for (let i = 0; i < x.length; i++) x[i] = Math.random();
      for (let w = 0; w < opts.warmup; w++) await backend.run(x, batch); // warm-up
      let iterations = 0;
      const t0 = process.hrtime.bigint();
      let elapsed = 0;
      while (elapsed < opts.seconds || iterations < opts.minIter) {
        await backend.run(x, batch);
        iterations++;
        elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
      }
      const row = { backend: name, device: backend.device, batch, iterations, msPerBatch: (elapsed * 1000) / iterations, passesPerSec: (batch * iterations) / elapsed };
      rows.push(row);
      console.log(`${name.padEnd(14)} batch ${String(batch).padStart(4)}: ${row.passesPerSec.toFixed(0).padStart(9)} passes/s  ${row.msPerBatch.toFixed(3).padStart(9)} ms/batch`);
    }
    await backend.dispose();
  }
  console.log('\n| backend | device | batch | ms/batch | forward passes/s |\n|---|---|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.backend} | ${r.device} | ${r.batch} | ${r.msPerBatch.toFixed(3)} | ${r.passesPerSec.toFixed(0)} |`);
  for (const s of skipped) console.log(`skipped ${s.backend}: ${s.reason}`);
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ model: model.manifest.name, manifest: model.manifestPath, rows, skipped }, null, 2));
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});
