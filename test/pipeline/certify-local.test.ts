// Single-node certification end to end on real files, a real backend and the piscina pool.
import test from 'ava';
import { mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ablationCount,
  addVotes,
  encodeAblation,
  encodedSize,
  squareDeltas,
  certifyCounts,
  type EncodeSpec,
} from '../../core/index.js';
import { certifyLocal } from '../../pipeline/certify-local.js';
import { createBackend } from '../../worker/backends/index.js';
import { FIXTURE_MODELS } from '../../lab/paths.js';
import { writeTinyGrayIdx, writeTinyRgbFolder } from '../helpers/tiny-data.js';

const TINY_GRAY = join(FIXTURE_MODELS, 'tiny-gray');
const TINY_RGB = join(FIXTURE_MODELS, 'tiny-rgb');

async function tmp(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-e2e-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function lines(text: string): any[] {
  return text.trim().split('\n').map((l) => JSON.parse(l));
}

test('counts equal a direct loop over every ablation; summary agrees with images.jsonl', async (t) => {
  const dir = await tmp(t);
  const { labels, bytes } = await writeTinyGrayIdx(join(dir, 'data'), 50);
  const res = await certifyLocal({
    model: TINY_GRAY,
    data: { format: 'idx', path: join(dir, 'data') },
    rules: [0.3, 0.6],
    out: join(dir, 'out'),
    backend: 'onnx',
    threads: 1,
    prepThreads: 1,
    tile: { images: 3, ablations: 8 },
    unitImages: 6,
  });
  const records = lines(await readFile(res.files.images, 'utf8'));
  t.is(records.length, 50);

  // Reference: the plain loop, all 8 column ablations of one image per backend call.
  const { backend } = await createBackend(TINY_GRAY, 'onnx', { threads: 1 });
  t.teardown(() => backend.dispose());
  const scheme = { kind: 'column' as const, size: 2, stride: 1 };
  const geom = { height: 8, width: 8 };
  const spec: EncodeSpec = { scheme, geom, channels: 1, encoding: 'levine6', layout: 'nchw' };
  const K = ablationCount(scheme, geom);
  const deltas = squareDeltas(scheme, geom, 8);
  for (let i = 0; i < 50; i++) {
    const img = Float32Array.from(bytes[i]!, (v) => Math.fround(v / 255));
    const input = new Float32Array(K * encodedSize(spec));
    for (let k = 0; k < K; k++) encodeAblation(spec, img, k, input, k * encodedSize(spec));
    const counts = [new Int32Array(3), new Int32Array(3), new Int32Array(3)];
    addVotes(await backend.run(input, K), 3, new Int32Array(K), [0.3, 0.6, 'argmax'], counts);
    const rec = records[i];
    t.is(rec.index, i);
    t.is(rec.label, labels[i]);
    t.deepEqual(rec.results['0.3'].counts, Array.from(counts[0]!));
    t.deepEqual(rec.results['0.6'].counts, Array.from(counts[1]!));
    t.deepEqual(rec.results.argmax.counts, Array.from(counts[2]!));
    t.deepEqual({ ...rec.results['0.3'], counts: undefined }, { ...certifyCounts(counts[0]!, deltas), counts: undefined });
  }
  const s = res.summary;
  const r03 = s.smoothed.find((x) => x.rule === '0.3')!;
  const correct = records.filter((r) => r.results['0.3'].prediction === r.label).length;
  t.is(r03.correct, correct);
  const cert2 = records.filter((r) => r.results['0.3'].prediction === r.label && r.results['0.3'].certified >= 2).length;
  t.is(r03.certifiedCorrect[1], cert2);
  t.true(r03.cleanAccuracy > 0.8, `tiny model should be accurate on its own data, got ${r03.cleanAccuracy}`);
  t.true(s.baseClassifierAblatedAccuracy! > 0.5);
  const csv = await readFile(res.files.csv, 'utf8');
  t.regex(csv, /^patch_size,certified_acc@0\.3,certified_acc@0\.6,certified_acc@argmax\n0,/);
  t.regex(await readFile(res.files.svg, 'utf8'), /^<svg/);
});

test('results are byte-identical whatever the unit size, and a crashed run resumes to the same result', async (t) => {
  const dir = await tmp(t);
  await writeTinyGrayIdx(join(dir, 'data'), 40, 9);
  const base = {
    model: TINY_GRAY,
    data: { format: 'idx' as const, path: join(dir, 'data') },
    rules: [0.3],
    backend: 'onnx',
    threads: 1,
    prepThreads: 1,
    tile: { images: 4, ablations: 4 },
  };
  const a = await certifyLocal({ ...base, out: join(dir, 'a'), unitImages: 4 });
  const b = await certifyLocal({ ...base, out: join(dir, 'b'), unitImages: 40 });
  const imagesA = await readFile(a.files.images, 'utf8');
  t.is(await readFile(b.files.images, 'utf8'), imagesA);
  t.is(await readFile(b.files.csv, 'utf8'), await readFile(a.files.csv, 'utf8'));

  // Simulate a crash: keep half of the unit log plus a line cut short, drop the outputs, rerun.
  const log = (await readFile(join(dir, 'a', 'units.log.jsonl'), 'utf8')).trim().split('\n');
  t.is(log.length, 10);
  await writeFile(join(dir, 'a', 'units.log.jsonl'), log.slice(0, 5).join('\n') + '\n');
  await appendFile(join(dir, 'a', 'units.log.jsonl'), log[5]!.slice(0, 40));
  await rm(a.files.images);
  const c = await certifyLocal({ ...base, out: join(dir, 'a'), unitImages: 4 });
  t.is(c.summary.run.resumedImages, 20);
  t.is(c.summary.run.ablationsRun, 20 * 8);
  t.is(await readFile(c.files.images, 'utf8'), imagesA);

  // A different job into the same folder is refused rather than mixed.
  await t.throwsAsync(certifyLocal({ ...base, rules: [0.5], out: join(dir, 'a') }), { message: /holds a different job/ });
});

test('a corrupt image is reported by name while every other image is certified', async (t) => {
  const dir = await tmp(t);
  const files = await writeTinyRgbFolder(join(dir, 'imgs'), 6);
  const bad = files[7]!;
  const png = await readFile(bad);
  await writeFile(bad, png.subarray(0, Math.floor(png.length / 2))); // truncated PNG
  const res = await certifyLocal({
    model: TINY_RGB,
    data: { format: 'imagefolder', path: join(dir, 'imgs') },
    rules: [0.3],
    out: join(dir, 'out'),
    backend: 'onnx',
    threads: 1,
    prepThreads: 1,
  });
  const records = lines(await readFile(res.files.images, 'utf8'));
  t.is(records.length, 24);
  const failed = records.filter((r) => r.error);
  t.is(failed.length, 1);
  t.true(failed[0].source.endsWith('1_green/001.png'));
  t.true(failed[0].error.includes('001.png'), failed[0].error);
  t.is(res.summary.failedImages.length, 1);
  t.is(res.summary.certifiedImages, 23);
  t.is(res.summary.smoothed[0]!.images, 23);
  t.true(records.filter((r) => r.results).every((r) => r.results.argmax.counts.reduce((x: number, y: number) => x + y, 0) === 64)); // block 3x3, stride 1 on 8x8: 64 ablations
});

test('a model whose input does not fit the data, and a missing data set, end with errors that name them', async (t) => {
  const dir = await tmp(t);
  await writeTinyGrayIdx(join(dir, 'data'), 5);
  // tiny-rgb wants 8x8x3; the IDX files are 8x8x1
  const e1 = await t.throwsAsync(certifyLocal({ model: TINY_RGB, data: { format: 'idx', path: join(dir, 'data') }, out: join(dir, 'o1') }));
  t.regex(e1!.message, /t10k-images-idx3-ubyte/);
  const e2 = await t.throwsAsync(certifyLocal({ model: TINY_GRAY, data: { format: 'idx', path: join(dir, 'nope') }, out: join(dir, 'o2') }));
  t.regex(e2!.message, /nope/);
  const e3 = await t.throwsAsync(certifyLocal({ model: join(dir, 'no-model'), data: { format: 'idx', path: join(dir, 'data') }, out: join(dir, 'o3') }));
  t.regex(e3!.message, /no-model/);
});

test('serialized and concurrent backend calls, 1 to 3 units in flight: identical counts and certificates', async (t) => {
  const dir = await tmp(t);
  await writeTinyGrayIdx(join(dir, 'data'), 40);
  const texts: string[] = [];
  const busy: number[] = [];
  for (const [serializeInference, unitsInFlight] of [[true, 1], [true, 3], [false, 3]] as const) {
    let ms = 0;
    const res = await certifyLocal({
      model: TINY_GRAY,
      data: { format: 'idx', path: join(dir, 'data') },
      rules: [0.3, 'argmax'],
      out: join(dir, `out-${serializeInference}-${unitsInFlight}`),
      backend: 'onnx',
      threads: 1,
      prepThreads: 2,
      tile: { images: 2, ablations: 8 },
      unitImages: 4,
      serializeInference,
      unitsInFlight,
      onUnitResult: (r) => {
        ms += r.inferenceMs;
      },
    });
    texts.push(await readFile(res.files.images, 'utf8'));
    busy.push(ms);
  }
  t.is(lines(texts[0]!).length, 40);
  t.is(texts[1], texts[0]);
  t.is(texts[2], texts[0]);
  t.true(busy.every((b) => b > 0), 'every run reports its backend time');
});
