// Band-native (kept-view) models end to end: single-node certify of the tiny-kept fixture gives
// the counts of a direct loop whose inputs are cut out of the full encoding (an independent path
// to the same pixels), and a 2-worker NATS run gives byte-identical outputs.
import test from 'ava';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  type EncodeSpec,
  ablationCount,
  ablationPosition,
  addVotes,
  encodeAblation,
  encodedSize,
  keptMask,
} from '../../core/index.js';
import { certifyLocal } from '../../pipeline/certify-local.js';
import { createBackend } from '../../worker/backends/index.js';
import { distSetup } from '../helpers/dist-harness.js';
import { FIXTURE_MODELS } from '../../lab/paths.js';
import { rng } from '../helpers/tiny-data.js';

const TINY_KEPT = join(FIXTURE_MODELS, 'tiny-kept');
const H = 8;
const W = 8;
const S = 4;

/** 8x8 RGB PNGs whose class is the quarter of the columns holding a bright stripe (as the fixture was trained on). */
async function writeStripeFolder(root: string, perClass: number, seed = 9): Promise<Uint8Array[]> {
  const rand = rng(seed);
  const out: Uint8Array[] = [];
  for (let c = 0; c < 4; c++) {
    await mkdir(join(root, `q${c}`), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.alloc(H * W * 3);
      const gain = 0.5 + 0.5 * rand();
      for (let r = 0; r < H; r++)
        for (let col = 0; col < W; col++)
          for (let ch = 0; ch < 3; ch++) {
            const v = 0.35 * rand() + (Math.floor(col / 2) === c ? 0.6 * gain : 0);
            px[(r * W + col) * 3 + ch] = Math.round(255 * Math.min(1, v));
          }
      await sharp(px, { raw: { width: W, height: H, channels: 3 } }).png().toFile(join(root, `q${c}`, `${String(i).padStart(3, '0')}.png`));
      out.push(px);
    }
  }
  return out;
}

/** The kept view of ablation k, cut out of the full encoding by the full-image keep mask. */
function keptFromFull(full: Float32Array, scheme: EncodeSpec['scheme'], k: number, E: number): Float32Array {
  const mask = keptMask(scheme, { height: H, width: W }, k);
  const { row, col } = ablationPosition(scheme, { height: H, width: W }, k);
  const out = new Float32Array(E * H * S);
  for (let e = 0; e < E; e++)
    for (let i = 0; i < H; i++)
      for (let j = 0; j < S; j++) {
        const r = (row + i) % H;
        const c = (col + j) % W;
        if (mask[r * W + c] !== 1) throw new Error(`pixel ${r},${c} of ablation ${k} is not kept`);
        out[(e * H + i) * S + j] = full[e * H * W + r * W + c]!;
      }
  return out;
}

test('tiny-kept: single-node certify counts equal a direct loop over kept views cut from the full encoding', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-kept-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const images = await writeStripeFolder(join(dir, 'data'), 6);
  const res = await certifyLocal({
    model: TINY_KEPT,
    data: { format: 'imagefolder', path: join(dir, 'data') },
    rules: [0.3],
    out: join(dir, 'out'),
    backend: 'onnx',
    threads: 1,
    prepThreads: 1,
    tile: { images: 2, ablations: 3 },
    unitImages: 4,
  });
  const records = (await readFile(res.files.images, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  t.is(records.length, 24);
  const { backend } = await createBackend(TINY_KEPT, 'onnx', { threads: 1 });
  t.teardown(() => backend.dispose());
  t.is(backend.inputView, 'kept');
  t.deepEqual([...backend.inputShape!], [6, H, S]);
  const scheme = { kind: 'column' as const, size: S, stride: 1 };
  const full: EncodeSpec = { scheme, geom: { height: H, width: W }, channels: 3, encoding: 'levine6', layout: 'nchw' };
  const K = ablationCount(scheme, full.geom);
  t.is(K, 8);
  let positionMattered = false;
  for (let i = 0; i < images.length; i++) {
    const img = Float32Array.from(images[i]!, (v) => Math.fround(v / 255));
    const fullBuf = new Float32Array(encodedSize(full));
    const input = new Float32Array(K * 6 * H * S);
    const positions = new Float32Array(K * 2);
    for (let k = 0; k < K; k++) {
      encodeAblation(full, img, k, fullBuf, 0);
      input.set(keptFromFull(fullBuf, scheme, k, 6), k * 6 * H * S);
      positions[2 * k + 1] = ablationPosition(scheme, full.geom, k).col;
    }
    const logits = await backend.run(input, K, positions);
    const counts = [new Int32Array(4)];
    addVotes(logits, 4, new Int32Array(K), [0.3], counts);
    t.deepEqual(records[i].results['0.3'].counts, Array.from(counts[0]!), `image ${i}`);
    // the same pixels at another position give other logits: the position input is live
    const shifted = await backend.run(input, K, positions.map((v, j) => (j % 2 ? (v + 2) % W : v)));
    if (shifted.some((v, j) => v !== logits[j])) positionMattered = true;
  }
  t.true(positionMattered, 'the position input changes the logits');
  const r = res.summary.smoothed.find((x) => x.rule === '0.3')!;
  t.true(r.cleanAccuracy > 0.7, `smoothed clean accuracy ${r.cleanAccuracy}`);
});

test('tiny-kept: coordinator + 2 NATS workers give outputs byte-identical to single-node certify', async (t) => {
  const d = await distSetup(t, { images: 1 });
  const data = join(d.dir, 'data');
  await writeStripeFolder(data, 5);
  const single = await certifyLocal({
    model: TINY_KEPT,
    data: { format: 'imagefolder', path: data },
    rules: [0.3, 0.6],
    out: join(d.dir, 'single'),
    backend: 'onnx',
    threads: 1,
    prepThreads: 1,
    tile: { images: 2, ablations: 4 },
    unitImages: 4,
  });
  const nats = d.servers.join(',');
  const workerArgs = ['--nats', nats, '--backend', 'onnx', '--threads', '1', '--prep-threads', '1', '--concurrency', '1'];
  const workers = [0, 1].map((i) => d.procs.cli(`worker-${i}`, ['worker', ...workerArgs, '--worker-id', `kw${i}`]));
  const out = join(d.dir, 'dist');
  const c = d.procs.cli('certify', ['certify', '--nats', nats, '--model', TINY_KEPT, '--data', data, '--thresholds', '0.3,0.6', '--backend', 'onnx',
    '--tile-images', '2', '--tile-ablations', '4', '--unit-images', '2', '--unit-ablations', '4', '--out', out, '--job-id', `${single.job.jobId}-d`, '--quiet']);
  const exit = await c.waitExit(120_000);
  t.is(exit.code, 0, c.output());
  t.deepEqual(await readFile(join(out, 'images.jsonl')), await readFile(single.files.images), 'images.jsonl identical');
  t.deepEqual(await readFile(join(out, 'certified.csv')), await readFile(single.files.csv), 'certified.csv identical');
  for (const w of workers) w.kill('SIGTERM');
  for (const w of workers) t.is((await w.waitExit(20_000)).code, 0, w.output());
});
