// The device-side ablation stage (worker/backends/onnx-graph-ablate.ts) on the CPU provider: its
// output is bit-identical to core/encoding.ts for every scheme (with wrap-around and strides
// that do not divide the side), both encodings, both layouts, grey and RGB, with and without
// normalization; certify counts with the stage equal the host-built run's; the channel padding
// of onnx-graph-pad.ts leaves a model's logits as they were.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import ort from 'onnxruntime-node';
import { type AblationScheme, type EncodeSpec, ablationCount, encodeAblationRange, encodedChannels } from '../../core/index.js';
import { certifyLocal } from '../../pipeline/certify-local.js';
import { createBackend } from '../../worker/backends/index.js';
import { STAGE_IMAGES, STAGE_POSITIONS, composeAblationStage, stageAblations } from '../../worker/backends/onnx-graph-ablate.js';
import { decodeOnnx, encodeOnnx, node, tensorInput, type OnnxModel } from '../../worker/backends/onnx-graph.js';
import { isBadConvChannels, padConvChannels } from '../../worker/backends/onnx-graph-pad.js';
import { REPO_ROOT } from '../../lab/paths.js';
import { writeTinyGrayIdx, writeTinyRgbFolder, rng } from '../helpers/tiny-data.js';
import { bitsEqual, fixture, loadParity, maxAbsDiff, rmTemp } from './helpers.js';

/** A model whose output is its input: the stage's output, read back. */
function identityModel(dims: Array<number | string>): OnnxModel {
  return {
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'identity',
      node: [node('Identity', ['input'], ['out'], 'id')],
      initializer: [],
      input: [tensorInput('input', dims)],
      output: [tensorInput('out', dims)],
    },
  } as OnnxModel & { irVersion?: number };
}

async function stageOutput(spec: EncodeSpec, images: Float32Array, n: number, start: number, end: number, normalizeIn: 'float64' | 'float32' = 'float64'): Promise<Float32Array> {
  const E = encodedChannels(spec.encoding, spec.channels);
  const { height: H, width: W } = spec.geom;
  const m = identityModel(spec.layout === 'nchw' ? ['n', E, H, W] : ['n', H, W, E]);
  (m as unknown as { irVersion: number }).irVersion = 7;
  composeAblationStage(m, 'input', {
    geom: spec.geom,
    channels: spec.channels,
    encoding: spec.encoding,
    layout: spec.layout,
    ...(spec.mean ? { mean: spec.mean, std: spec.std! } : {}),
    normalizeIn,
  });
  const s = await ort.InferenceSession.create(encodeOnnx(m), { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  const abl = stageAblations(spec.scheme, spec.geom, start, end);
  const out = await s.run({
    [STAGE_IMAGES]: new ort.Tensor('float32', images, [n, H, W, spec.channels]),
    [STAGE_POSITIONS]: new ort.Tensor('float32', abl, [end - start, 4]),
  });
  await s.release();
  return out.out!.data as Float32Array;
}

function hostOutput(spec: EncodeSpec, images: Float32Array, n: number, start: number, end: number): Float32Array {
  const per = spec.geom.height * spec.geom.width * spec.channels;
  const parts = Array.from({ length: n }, (_, i) => encodeAblationRange(spec, images.subarray(i * per, (i + 1) * per), start, end));
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function images(n: number, H: number, W: number, C: number, seed: number): Float32Array {
  const r = rng(seed);
  // 8-bit values as the readers give them, plus exact 0 and 1
  return Float32Array.from({ length: n * H * W * C }, (_, i) => (i % 17 === 0 ? 0 : i % 19 === 0 ? 1 : Math.fround(Math.floor(r() * 256) / 255)));
}

const schemes: AblationScheme[] = [
  { kind: 'column', size: 3, stride: 1 },
  { kind: 'column', size: 2, stride: 3 }, // 3 does not divide 8: denser grid at the seam
  { kind: 'row', size: 4, stride: 1 },
  { kind: 'row', size: 1, stride: 5 },
  { kind: 'block', size: 3, stride: 1 },
  { kind: 'block', size: 5, stride: 2 },
  { kind: 'column', size: 8, stride: 1 }, // the whole width
];

test('the stage builds exactly core/encoding.ts: every scheme with wrap-around, both encodings and layouts, grey and RGB', async (t) => {
  const geom = { height: 7, width: 8 }; // not square: rows and columns cannot be mixed up
  let cases = 0;
  for (const scheme of schemes)
    for (const encoding of ['levine6', 'mask'] as const)
      for (const layout of ['nchw', 'nhwc'] as const)
        for (const channels of [1, 3]) {
          if (scheme.size > Math.min(geom.height, geom.width) && scheme.kind === 'block') continue;
          if (scheme.kind === 'row' && scheme.size > geom.height) continue;
          const spec: EncodeSpec = { scheme, geom, channels, encoding, layout };
          const K = ablationCount(scheme, geom);
          const n = 2;
          const x = images(n, geom.height, geom.width, channels, cases + 1);
          // all ablations, and a range ending at the last (wrapping) position
          for (const [a, b] of [[0, K], [Math.max(0, K - 3), K]] as const) {
            const dev = await stageOutput(spec, x, n, a, b);
            const host = hostOutput(spec, x, n, a, b);
            t.true(bitsEqual(dev, host), `${JSON.stringify(scheme)} ${encoding} ${layout} C=${channels} ablations [${a},${b}): max diff ${maxAbsDiff(dev, host)}`);
          }
          cases++;
        }
  t.true(cases >= 40);
});

test('the stage normalizes like the host: bit-identical in float64, within 1 ulp-scale in float32', async (t) => {
  const geom = { height: 6, width: 5 };
  const spec: EncodeSpec = {
    scheme: { kind: 'block', size: 2, stride: 2 },
    geom,
    channels: 3,
    encoding: 'levine6',
    layout: 'nchw',
    mean: [0.4914, 0.4822, 0.4465, 0.35, 0.7, 0.1],
    std: [0.247, 0.243, 0.261, 0.3, 0.35, 0.9],
  };
  const K = ablationCount(spec.scheme, geom);
  const x = images(3, 6, 5, 3, 9);
  const host = hostOutput(spec, x, 3, 0, K);
  t.true(bitsEqual(await stageOutput(spec, x, 3, 0, K, 'float64'), host), 'float64 normalization: bit-identical');
  const f32 = await stageOutput(spec, x, 3, 0, K, 'float32');
  t.true(maxAbsDiff(f32, host) < 1e-6, `float32 normalization: ${maxAbsDiff(f32, host)}`);
});

test('certify with the stage on the CPU provider gives the same counts and certificates as host-built ablations', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'patchcert-stage-'));
  try {
    const gray = path.join(dir, 'gray');
    await writeTinyGrayIdx(gray, 12);
    const rgb = path.join(dir, 'rgb');
    await writeTinyRgbFolder(rgb, 3);
    const runs = [
      { model: fixture('tiny-gray'), data: { format: 'idx' as const, path: gray }, scheme: undefined },
      { model: fixture('tiny-gray'), data: { format: 'idx' as const, path: gray }, scheme: { kind: 'column' as const, size: 3, stride: 3 } },
      { model: fixture('tiny-rgb'), data: { format: 'imagefolder' as const, path: rgb }, scheme: undefined },
      { model: path.join(REPO_ROOT, 'models', 'fashion-mnist-column2'), data: undefined, scheme: undefined },
    ];
    for (const [i, r] of runs.entries()) {
      let data = r.data;
      if (!data) {
        const fm = '/usr/share/datasets/fashion-mnist';
        if (!fs.existsSync(fm)) continue;
        data = { format: 'idx' as const, path: fm, limit: 4 } as never;
      }
      const common = { model: r.model, data: data!, rules: [0.3, 0.6], backend: 'onnx', threads: 1, prepThreads: 1, ...(r.scheme ? { scheme: r.scheme } : {}), tile: { images: 2, ablations: 5 } };
      const host = await certifyLocal({ ...common, out: path.join(dir, `host-${i}`) });
      process.env.PATCHCERT_DEVICE_ABLATION = '1';
      let dev;
      try {
        dev = await certifyLocal({ ...common, out: path.join(dir, `dev-${i}`) });
      } finally {
        delete process.env.PATCHCERT_DEVICE_ABLATION;
      }
      t.regex(dev.summary.run.backends[0]!.device, /ablations built in the graph$/, 'the stage was used');
      t.notRegex(host.summary.run.backends[0]!.device, /ablations built/);
      t.deepEqual(fs.readFileSync(dev.files.images), fs.readFileSync(host.files.images), `${path.basename(r.model)} ${JSON.stringify(r.scheme ?? 'trained scheme')}: images.jsonl identical`);
      t.deepEqual(fs.readFileSync(dev.files.csv), fs.readFileSync(host.files.csv));
    }
  } finally {
    rmTemp(dir);
  }
});

test('channel padding: every 6-channel bundled model has its first conv padded to 8 and its logits unchanged on the CPU provider', async (t) => {
  t.true(isBadConvChannels(6) && isBadConvChannels(9) && isBadConvChannels(15) && isBadConvChannels(18));
  t.false(isBadConvChannels(3) || isBadConvChannels(4) || isBadConvChannels(2) || isBadConvChannels(12) || isBadConvChannels(8));
  for (const name of ['cifar10-column4', 'cifar10-block12', 'cifar10-column4-smallcnn', 'fashion-mnist-column2']) {
    const dir = path.join(REPO_ROOT, 'models', name);
    const bytes = fs.readFileSync(path.join(dir, 'model.onnx'));
    const g = decodeOnnx(bytes);
    t.true(Buffer.from(encodeOnnx(g)).equals(bytes), `${name}: decode + encode gives back the same bytes`);
    const padded = padConvChannels(g);
    const six = name !== 'fashion-mnist-column2';
    t.deepEqual(padded.map((p) => [p.channels, p.paddedTo]), six ? [[6, 8]] : [], name);
    if (!six) continue;
    const p = loadParity(dir);
    const rows = 4;
    const x = new ort.Tensor('float32', p.x.slice(0, rows * p.shape[1] * p.shape[2] * p.shape[3]), [rows, ...p.shape.slice(1)]);
    const a = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const b = await ort.InferenceSession.create(encodeOnnx(g), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const ya = (await a.run({ input: x })).logits!.data as Float32Array;
    const yb = (await b.run({ input: x })).logits!.data as Float32Array;
    await a.release();
    await b.release();
    t.true(maxAbsDiff(ya, yb) <= 1e-5, `${name}: padded vs original ${maxAbsDiff(ya, yb)}`);
  }
});

test('cuda and tensorrt are selectable by name; absent, the error names the missing library', async (t) => {
  for (const name of ['cuda', 'tensorrt'] as const) {
    try {
      const sel = await createBackend(fixture('tiny-gray'), name, { threads: 1 });
      // a machine whose install has the provider: it runs
      t.is(sel.backend.name, name);
      await sel.backend.dispose();
    } catch (e) {
      t.regex((e as Error).message, new RegExp(`^backend ${name}: onnxruntime-node has no (CUDA|TensorRT) provider here, .*libonnxruntime_providers_(shared|${name})\\.so is missing .*--onnxruntime-node-install=cuda12`));
    }
  }
});
