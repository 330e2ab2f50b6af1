// Single-node certification throughput per backend, on the same model, data and settings.
//
//   node dist/bench/certify.js --model DIR --data PATH [--format F] [--limit 1000]
//        [--backends onnx,tfjs-wasm] [--thresholds 0.3] [--threads N] [--prep-threads N]
//
// Prints ablations/s per backend and how often the backends' certificates agree image by image.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { certifyLocal } from '../pipeline/certify-local.js';
import { detectFormat, parseRules } from '../cli/options.js';
import type { DatasetFormat } from '../worker/types.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    format: { type: 'string' },
    split: { type: 'string' },
    limit: { type: 'string', default: '1000' },
    offset: { type: 'string', default: '0' },
    backends: { type: 'string', default: 'onnx,tfjs-wasm' },
    thresholds: { type: 'string', default: '0.3' },
    threads: { type: 'string' },
    'prep-threads': { type: 'string' },
    'tile-images': { type: 'string' },
  },
});
if (!values.model || !values.data) {
  console.error('usage: node dist/bench/certify.js --model DIR --data PATH [--limit N] [--backends onnx,tfjs-wasm]');
  process.exit(1);
}
const data = resolve(values.data);
const format = (values.format ?? detectFormat(data)) as DatasetFormat;
const rows: string[] = [];
const records = new Map<string, string[]>();
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
for (const backend of values.backends.split(',')) {
  const out = await mkdtemp(join(tmpdir(), `patchcert-bench-${backend}-`));
  try {
    const res = await certifyLocal({
      model: resolve(values.model),
      data: { format, path: data, offset: Number(values.offset), limit: Number(values.limit), ...(values.split ? { split: values.split as 'test' } : {}) },
      rules: parseRules(values.thresholds),
      backend,
      out,
      ...(values.threads ? { threads: Number(values.threads) } : {}),
      ...(values['prep-threads'] ? { prepThreads: Number(values['prep-threads']) } : {}),
      ...(values['tile-images'] ? { tile: { images: Number(values['tile-images']) } } : {}),
    });
    const s = res.summary;
    const rule = s.smoothed[0]!;
    rows.push(
      `| ${backend} | ${s.run.backends.map((b) => b.device).join(', ')} | ${s.images} | ${s.run.ablationsRun} | ${s.run.wallSeconds.toFixed(1)} | ${s.run.ablationsPerSecond.toFixed(0)} | ${(100 * rule.cleanAccuracy).toFixed(2)}% |`,
    );
    records.set(backend, (await readFile(res.files.images, 'utf8')).trim().split('\n'));
  } catch (err) {
    rows.push(`| ${backend} | failed: ${(err as Error).message} | | | | | |`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
console.log('| backend | device | images | ablations | wall s | ablations/s | smoothed clean acc (first rule) |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
const names = [...records.keys()];
for (let i = 1; i < names.length; i++) {
  const a = records.get(names[0]!)!;
  const b = records.get(names[i]!)!;
  let same = 0;
  let sameCert = 0;
  for (let k = 0; k < Math.min(a.length, b.length); k++) {
    if (a[k] === b[k]) same++;
    const ra = JSON.parse(a[k]!).results;
    const rb = JSON.parse(b[k]!).results;
    if (ra && rb && Object.keys(ra).every((key) => ra[key].prediction === rb[key]?.prediction && ra[key].certified === rb[key]?.certified)) sameCert++;
  }
  console.log(`${names[0]} vs ${names[i]}: identical counts on ${same}/${a.length} images, identical prediction+certificate on ${sameCert}/${a.length}`);
}
