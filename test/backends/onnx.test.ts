// onnx backend: parity with PyTorch, determinism, shape checks (static and by dry run), hashes.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { createBackend, createOnnxBackend } from '../../worker/backends/index.js';
import { loadModel } from '../../worker/model.js';
import { ModelError } from '../../worker/types.js';
import {
  TINY,
  argmaxRows,
  bitsEqual,
  buildGapOnnx,
  copyFixture,
  fixture,
  loadParity,
  maxAbsDiff,
  parityModels,
  readManifest,
  rmTemp,
  writeManifest,
  writeOnnxModel,
} from './helpers.js';

/** deterministic pseudo-random inputs in [0,1) */
function randomInputs(n: number, seed = 7): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) out[i] = (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  return out;
}

for (const [name, dir] of parityModels()) {
  test(`${name}: onnx logits match PyTorch within 1e-4 and give the same argmax votes`, async (t) => {
    const { backend } = await createBackend(dir, 'onnx');
    try {
      const p = loadParity(dir);
      t.is(backend.name, 'onnx');
      t.is(backend.layout, 'nchw');
      t.deepEqual([...backend.inputShape!], p.shape.slice(1));
      t.is(backend.numClasses, p.numClasses);
      t.is(backend.modelSha256, readManifest(dir).formats.onnx.sha256);
      t.regex(backend.device, /^cpu \(onnxruntime 1\.\d+\.\d+, \d+ threads?\)$/);
      t.is(backend.versions['onnxruntime-node'], '1.30.0');
      t.is(backend.inputView, p.positions ? 'kept' : 'full');
      const y = await backend.run(p.x, p.shape[0], p.positions);
      const d = maxAbsDiff(y, p.y);
      t.true(d <= 1e-4, `max |diff| ${d}`);
      t.deepEqual(argmaxRows(y, p.numClasses), argmaxRows(p.y, p.numClasses));
      t.log(`${name}: onnx max |logit - PyTorch| = ${d.toExponential(2)}`);
    } finally {
      await backend.dispose();
    }
  });
}

for (const [name, dir] of parityModels()) {
  test(`${name}: onnx logits are bit-identical across calls, batch compositions and thread counts`, async (t) => {
    const model = await loadModel(dir);
    const b2 = await createOnnxBackend(model, { threads: 2 });
    const b1 = await createOnnxBackend(model, { threads: 1 });
    try {
      const per = b2.inputShape![0] * b2.inputShape![1] * b2.inputShape![2];
      const K = b2.numClasses;
      const p = loadParity(dir);
      // parity inputs (real ablations) followed by random ones: 24 + 40 = 64 samples
      const N = 64;
      const x = new Float32Array(N * per);
      x.set(p.x);
      x.set(randomInputs((N - p.shape[0]) * per), p.x.length);
      // kept-view models: the parity positions, then random grid positions
      let pos: Float32Array | undefined;
      if (p.positions) {
        const m = readManifest(dir);
        pos = new Float32Array(N * 2);
        pos.set(p.positions);
        const r = randomInputs((N - p.shape[0]) * 2, 11);
        for (let i = p.positions.length; i < N * 2; i++) pos[i] = Math.floor(r[i - p.positions.length]! * (i % 2 ? m.input.width : m.input.height));
      }
      const sub = (s: number, e: number) => [x.subarray(s * per, e * per), e - s, pos?.subarray(s * 2, e * 2)] as const;
      const all = await b2.run(x, N, pos);
      t.true(bitsEqual(all, await b2.run(x, N, pos)), 'repeated call');
      t.true(bitsEqual(all, await b2.run(x.slice(), N, pos?.slice())), 'repeated call on a copy');
      const ones = new Float32Array(N * K);
      for (let i = 0; i < N; i++) ones.set(await b2.run(...sub(i, i + 1)), i * K);
      t.true(bitsEqual(all, ones), 'batch of 64 vs 64 batches of 1');
      const mixed = new Float32Array(N * K);
      for (const [s, e] of [[0, 7], [7, 39], [39, 64]] as const) mixed.set(await b2.run(...sub(s, e)), s * K);
      t.true(bitsEqual(all, mixed), 'batches 7 + 32 + 25');
      t.true(bitsEqual(all, await b1.run(x, N, pos)), '1 thread vs 2 threads');
    } finally {
      await b1.dispose();
      await b2.dispose();
    }
  });
}

test('onnx: a manifest claiming a 10x10 input is refused, naming the model file and both shapes', async (t) => {
  const dir = copyFixture('tiny-gray');
  try {
    const m = readManifest(dir);
    m.input.height = 10;
    m.input.width = 10;
    writeManifest(dir, m);
    const e = await t.throwsAsync(createBackend(dir, 'onnx'), { instanceOf: ModelError });
    t.is(e!.file, path.join(dir, 'model.onnx'));
    t.true(e!.message.includes(path.join(dir, 'model.onnx')), e!.message);
    t.true(e!.message.includes('[N,2,10,10]'), e!.message); // expected
    t.regex(e!.message, /takes \[[^,\]]+,2,8,8\]/); // actual
  } finally {
    rmTemp(dir);
  }
});

test('onnx: a manifest claiming 5 classes for a 3-class model is refused, naming the file and both shapes', async (t) => {
  const dir = copyFixture('tiny-rgb');
  try {
    const m = readManifest(dir);
    m.classes = ['a', 'b', 'c', 'd', 'e'];
    writeManifest(dir, m);
    const e = await t.throwsAsync(createBackend(dir, 'onnx'), { instanceOf: ModelError });
    t.true(e!.message.includes(path.join(dir, 'model.onnx')), e!.message);
    t.true(e!.message.includes('[N,5]'), e!.message);
    t.regex(e!.message, /output is \[[^,\]]+,4\]/);
  } finally {
    rmTemp(dir);
  }
});

test('onnx: a manifest claiming the mask encoding of an RGB image for a 6-channel model is refused', async (t) => {
  const dir = copyFixture('tiny-rgb'); // mask, 4 channels; claim levine6 -> 6 channels
  try {
    const m = readManifest(dir);
    m.encoding = 'levine6';
    writeManifest(dir, m);
    const e = await t.throwsAsync(createBackend(dir, 'onnx'), { instanceOf: ModelError });
    t.true(e!.message.includes('[N,6,8,8]') && /takes \[[^,\]]+,4,8,8\]/.test(e!.message), e!.message);
  } finally {
    rmTemp(dir);
  }
});

test('onnx, dynamic dims: a correct model runs, the logits are the graph\'s arithmetic (NCHW)', async (t) => {
  const dir = writeOnnxModel(buildGapOnnx({ e: 2, k: 3, inputDims: ['N', 'C', 'H', 'W'], outputDims: ['N', 'K'], seed: 3 }), {
    height: 4,
    width: 4,
    channels: 1,
    classes: 3,
  });
  try {
    const { backend } = await createBackend(dir, 'onnx');
    // channel 0 all ones, channel 1 all zeros -> logits = W[:,0] + b; swap -> W[:,1] + b
    const x = new Float32Array(2 * 2 * 16);
    x.fill(1, 0, 16);
    x.fill(1, 48, 64);
    const y = await backend.run(x, 2);
    const zero = await backend.run(new Float32Array(32), 1); // = b
    t.notDeepEqual([...y.subarray(0, 3)], [...y.subarray(3, 6)]);
    t.true(maxAbsDiff(await backend.run(x.subarray(0, 32), 1), y.subarray(0, 3)) === 0);
    t.true(zero.length === 3);
    await backend.dispose();
  } finally {
    rmTemp(dir);
  }
});

test('onnx, undeclared dims: a wrong class count is found (shape inference or dry run) and names the file and shapes', async (t) => {
  // no shapes declared in the graph: onnxruntime infers [?,3] for the output, or the dry run finds [1,3]
  const dir = writeOnnxModel(buildGapOnnx({ e: 2, k: 3 }), { height: 8, width: 8, channels: 1, classes: 5 });
  try {
    const e = await t.throwsAsync(createBackend(dir, 'onnx'), { instanceOf: ModelError });
    t.true(e!.message.includes(path.join(dir, 'model.onnx')), e!.message);
    t.regex(e!.message, /\[(N|1),5\]/);
    t.regex(e!.message, /\[(\?|1),3\]/);
  } finally {
    rmTemp(dir);
  }
});

test('onnx, dynamic dims: wrong channels fail the dry run with the expected shape in the error', async (t) => {
  const dir = writeOnnxModel(buildGapOnnx({ e: 6, k: 3, inputDims: ['N', 'C', 'H', 'W'] }), { height: 8, width: 8, channels: 1, classes: 3 });
  try {
    const e = await t.throwsAsync(createBackend(dir, 'onnx'), { instanceOf: ModelError });
    t.true(e!.message.includes(path.join(dir, 'model.onnx')), e!.message);
    t.true(e!.message.includes('[1,2,8,8]') && /dry run/.test(e!.message), e!.message);
  } finally {
    rmTemp(dir);
  }
});

test('onnx: a fixed batch dim or a wrong rank is refused', async (t) => {
  for (const [dims, re] of [
    [[1, 2, 8, 8], /batch dim is fixed to 1/],
    [['N', 2, 64], /rank 3, expected rank 4/],
  ] as const) {
    const dir = writeOnnxModel(buildGapOnnx({ e: 2, k: 3, inputDims: [...dims] }), { height: 8, width: 8, channels: 1, classes: 3 });
    try {
      const e = await t.throwsAsync(createBackend(dir, 'onnx'), { instanceOf: ModelError });
      t.regex(e!.message, re);
      t.true(e!.message.includes(path.join(dir, 'model.onnx')), e!.message);
    } finally {
      rmTemp(dir);
    }
  }
});

test('onnx: the backend hashes the bytes it loads (file changed after loadModel) and honours a pinned hash', async (t) => {
  const dir = copyFixture('tiny-gray');
  try {
    const model = await loadModel(dir);
    const pinned = model.formats.onnx!.sha256;
    const ok = await createOnnxBackend(model, { expectSha256: pinned, threads: 1 });
    await ok.dispose();
    const e1 = await t.throwsAsync(createOnnxBackend(model, { expectSha256: 'f'.repeat(64) }), { instanceOf: ModelError });
    t.regex(e1!.message, /pins f{64}/);
    const f = path.join(dir, 'model.onnx');
    const buf = fs.readFileSync(f);
    buf[200]! ^= 0xff;
    fs.writeFileSync(f, buf);
    const e2 = await t.throwsAsync(createOnnxBackend(model), { instanceOf: ModelError });
    t.true(e2!.message.includes(f) && e2!.message.includes(pinned) && /sha256 mismatch/.test(e2!.message), e2!.message);
    fs.rmSync(f);
    const e3 = await t.throwsAsync(createOnnxBackend(model), { instanceOf: ModelError });
    t.true(e3!.message.includes(f) && /not found/.test(e3!.message), e3!.message);
  } finally {
    rmTemp(dir);
  }
});

test('onnx: run() checks the input size', async (t) => {
  const { backend } = await createBackend(fixture('tiny-gray'), 'onnx', { threads: 1 });
  try {
    await t.throwsAsync(backend.run(new Float32Array(127), 1), { instanceOf: RangeError, message: /expected batch 1 x 128/ });
    await t.throwsAsync(backend.run(new Float32Array(128), 0), { instanceOf: RangeError });
    t.is((await backend.run(new Float32Array(256), 2)).length, 6);
    t.is(backend.device, 'cpu (onnxruntime 1.30.0, 1 thread)');
  } finally {
    await backend.dispose();
  }
});
