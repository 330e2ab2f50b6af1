// Exported models (test fixtures and the shipped models/) agree with PyTorch's logits on their
// parity sample, through onnxruntime-node and through TF.js (pure JS CPU backend), and their
// manifests' sha256 values match the files.
import test from 'ava';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = [path.resolve(fileURLToPath(import.meta.url), '../../..'), process.cwd()].find((d) =>
  fs.existsSync(path.join(d, 'test', 'fixtures', 'models')),
) ?? process.cwd();

const TOL = 1e-4;

function modelDirs(): string[] {
  const out: string[] = [];
  for (const base of [path.join(root, 'test', 'fixtures', 'models'), path.join(root, 'models')]) {
    if (!fs.existsSync(base)) continue;
    for (const name of fs.readdirSync(base).sort()) {
      const d = path.join(base, name);
      if (fs.existsSync(path.join(d, 'model.manifest.json')) && fs.existsSync(path.join(d, 'parity', 'meta.json'))) out.push(d);
    }
  }
  return out;
}

function readF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Float32Array(copy.buffer);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return a.length === b.length ? m : Infinity;
}

interface Parity {
  x: Float32Array;
  y: Float32Array;
  shape: [number, number, number, number];
  numClasses: number;
  /** kept-view models: their position input */
  positions?: Float32Array;
}

function loadParity(dir: string): Parity {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'parity', 'meta.json'), 'utf8'));
  return {
    x: readF32(path.join(dir, 'parity', 'inputs.bin')),
    y: readF32(path.join(dir, 'parity', 'logits.bin')),
    shape: meta.shape,
    numClasses: meta.numClasses,
    ...(meta.positions ? { positions: readF32(path.join(dir, 'parity', meta.positions)) } : {}),
  };
}

const dirs = modelDirs();

test('fixture models exist', (t) => {
  t.true(dirs.some((d) => d.endsWith('tiny-gray')));
  t.true(dirs.some((d) => d.endsWith('tiny-rgb')));
});

for (const dir of dirs) {
  const label = path.relative(root, dir);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'model.manifest.json'), 'utf8'));

  test(`${label}: manifest and sha256`, (t) => {
    t.is(manifest.schema, 'patchcert-model/1');
    t.is(manifest.normalization, null);
    const p = loadParity(dir);
    const E = manifest.encoding === 'levine6' ? 2 * manifest.input.channels : manifest.input.channels + 1;
    const { kind, size } = manifest.ablation;
    const kept = manifest.inputView === 'kept';
    const H = kept && kind !== 'column' ? size : manifest.input.height;
    const W = kept && kind !== 'row' ? size : manifest.input.width;
    t.deepEqual(p.shape.slice(1), [E, H, W]);
    t.is(p.positions?.length, kept ? 2 * p.shape[0] : undefined);
    t.is(p.numClasses, manifest.classes.length);
    const onnx = manifest.formats.onnx;
    t.is(createHash('sha256').update(fs.readFileSync(path.join(dir, onnx.file))).digest('hex'), onnx.sha256);
    const tj = manifest.formats.tfjs;
    if (tj) {
      const jsonPath = path.join(dir, tj.file);
      const h = createHash('sha256').update(fs.readFileSync(jsonPath));
      const doc = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
      for (const g of doc.weightsManifest) for (const f of g.paths) h.update(fs.readFileSync(path.join(path.dirname(jsonPath), f)));
      t.is(h.digest('hex'), tj.sha256);
    }
  });

  test(`${label}: onnxruntime-node matches PyTorch`, async (t) => {
    const ort = await import('onnxruntime-node');
    const p = loadParity(dir);
    const s = await ort.InferenceSession.create(path.join(dir, manifest.formats.onnx.file));
    const feeds = { [manifest.formats.onnx.inputName ?? 'input']: new ort.Tensor('float32', p.x, p.shape) };
    if (p.positions) feeds[manifest.formats.onnx.positionName ?? 'position'] = new ort.Tensor('float32', p.positions, [p.shape[0], 2]);
    const out = await s.run(feeds);
    const logits = out[manifest.formats.onnx.outputName ?? 'logits']!.data as Float32Array;
    const d = maxAbsDiff(logits, p.y);
    t.true(d <= TOL, `max |diff| ${d}`);
  });

  if (manifest.formats.tfjs) {
    test(`${label}: TF.js LayersModel matches PyTorch`, async (t) => {
      const tf = await import('@tensorflow/tfjs');
      await tf.setBackend('cpu');
      const p = loadParity(dir);
      const [, C, H, W] = p.shape;
      const jsonPath = path.join(dir, manifest.formats.tfjs.file);
      const doc = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
      const bins: Buffer[] = doc.weightsManifest.flatMap((g: { paths: string[] }) => g.paths).map((f: string) => fs.readFileSync(path.join(path.dirname(jsonPath), f)));
      // the pure-JS CPU backend is slow on ResNet-sized models: check the first 8 samples of those
      const weightBytes = bins.reduce((a, b) => a + b.byteLength, 0);
      const N = weightBytes > 4e6 ? Math.min(8, p.shape[0]) : p.shape[0];
      const nhwc = new Float32Array(N * C * H * W);
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++)
          for (let h = 0; h < H; h++)
            for (let w = 0; w < W; w++) nhwc[((n * H + h) * W + w) * C + c] = p.x[((n * C + c) * H + h) * W + w]!;
      const all = new Uint8Array(Buffer.concat(bins));
      const model = await tf.loadLayersModel(
        tf.io.fromMemory({
          modelTopology: doc.modelTopology,
          weightSpecs: doc.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights),
          weightData: all.buffer,
        }),
      );
      // small batches keep ResNet-sized models within memory on the JS CPU backend
      const per = H * W * C;
      const got = new Float32Array(N * p.numClasses);
      const bs = 8;
      for (let i = 0; i < N; i += bs) {
        const n = Math.min(bs, N - i);
        const out = tf.tidy(() => (model.predict(tf.tensor4d(nhwc.subarray(i * per, (i + n) * per), [n, H, W, C])) as import('@tensorflow/tfjs').Tensor).dataSync());
        got.set(out, i * p.numClasses);
      }
      model.dispose();
      const d = maxAbsDiff(got, p.y.subarray(0, N * p.numClasses));
      t.true(d <= TOL, `max |diff| ${d}`);
    });
  }
}
