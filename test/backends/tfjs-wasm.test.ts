// tfjs-wasm backend (@tensorflow/tfjs + @tensorflow/tfjs-backend-wasm): really on wasm, parity with
// PyTorch, flat memory, shape checks, hashes; reports whether logits depend on batch composition.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createBackend, createTfjsBackend } from '../../worker/backends/index.js';
import { hashModelFormat, loadModel } from '../../worker/model.js';
import { ModelError } from '../../worker/types.js';
import {
  TINY,
  argmaxRows,
  bitsEqual,
  copyFixture,
  fixture,
  loadParity,
  maxAbsDiff,
  nchwToNhwc,
  parityModels,
  readManifest,
  rmTemp,
  writeManifest,
} from './helpers.js';

test.serial('tfjs-wasm really runs on the wasm backend and reports its features', async (t) => {
  const { backend } = await createBackend(fixture('tiny-gray'), 'tfjs-wasm');
  try {
    t.is(backend.name, 'tfjs-wasm');
    t.is(tf.getBackend(), 'wasm');
    t.is(tf.engine().backendName, 'wasm');
    t.is(backend.layout, 'nhwc');
    t.deepEqual([...backend.inputShape!], [8, 8, 2]);
    t.regex(backend.device, /^wasm/);
    t.is(backend.versions['tfjs-backend-wasm'], '4.22.0');
    t.is(backend.versions['tfjs-core'], '4.22.0');
    t.regex(backend.versions['wasm-features']!, /^(simd|no-simd),(single-thread|threads:\d+)$/);
    t.log(`device: ${backend.device}; wasm features: ${backend.versions['wasm-features']}`);
    // the output tensor of a run lives on wasm too
    const before = tf.memory().numTensors;
    await backend.run(new Float32Array(128), 1);
    t.is(tf.memory().numTensors, before);
  } finally {
    await backend.dispose();
  }
});

for (const [name, dir] of parityModels().filter(([, d]) => readManifest(d).formats.tfjs)) {
  test.serial(`${name}: tfjs-wasm logits match PyTorch within 1e-4 and give the same argmax votes`, async (t) => {
    const { backend } = await createBackend(dir, 'tfjs-wasm');
    try {
      const p = loadParity(dir);
      t.is(backend.modelSha256, readManifest(dir).formats.tfjs.sha256);
      const y = await backend.run(nchwToNhwc(p.x, p.shape), p.shape[0]);
      const d = maxAbsDiff(y, p.y);
      t.true(d <= 1e-4, `max |diff| ${d}`);
      t.deepEqual(argmaxRows(y, p.numClasses), argmaxRows(p.y, p.numClasses));
      t.log(`${name}: tfjs-wasm max |logit - PyTorch| = ${d.toExponential(2)}`);
    } finally {
      await backend.dispose();
    }
  });
}

for (const [name, dir] of parityModels().filter(([, d]) => readManifest(d).formats.tfjs)) {
  test.serial(`${name}: tfjs-wasm determinism (repeated calls must match; batch composition reported)`, async (t) => {
    const { backend } = await createBackend(dir, 'tfjs-wasm');
    try {
      const p = loadParity(dir);
      const N = p.shape[0];
      const K = p.numClasses;
      const per = p.x.length / N;
      const x = nchwToNhwc(p.x, p.shape);
      const all = await backend.run(x, N);
      t.true(bitsEqual(all, await backend.run(x, N)), 'repeated call');
      t.true(bitsEqual(all, await backend.run(x.slice(), N)), 'repeated call on a copy');
      const ones = new Float32Array(N * K);
      for (let i = 0; i < N; i++) ones.set(await backend.run(x.subarray(i * per, (i + 1) * per), 1), i * K);
      const mixed = new Float32Array(N * K);
      // 5+16+rest; halves for a small sample (tiny-224's parity sample is 2 ablations of 1.2 MB)
      const cuts = N > 21 ? [0, 5, 21, N] : [0, Math.ceil(N / 2), N];
      for (let i = 1; i < cuts.length; i++) mixed.set(await backend.run(x.subarray(cuts[i - 1]! * per, cuts[i]! * per), cuts[i]! - cuts[i - 1]!), cuts[i - 1]! * K);
      const report = (b: Float32Array) => (bitsEqual(all, b) ? 'bit-identical' : `differ (max |diff| ${maxAbsDiff(all, b).toExponential(2)})`);
      const sizes = cuts.slice(1).map((c, i) => c - cuts[i]!).join('+');
      t.log(`${name}: tfjs-wasm batch of ${N} vs ${N} batches of 1: ${report(ones)}; vs batches ${sizes}: ${report(mixed)}`);
      // whatever the bits, the votes must not move on these samples
      t.deepEqual(argmaxRows(all, K), argmaxRows(ones, K));
      t.deepEqual(argmaxRows(all, K), argmaxRows(mixed, K));
    } finally {
      await backend.dispose();
    }
  });
}

test.serial('tfjs-wasm: memory stays flat over thousands of batches', async (t) => {
  const { backend } = await createBackend(fixture('tiny-rgb'), 'tfjs-wasm');
  try {
    const x = new Float32Array(16 * 8 * 8 * 4).fill(0.5);
    await backend.run(x, 16);
    const m0 = tf.memory();
    for (let i = 0; i < 3000; i++) await backend.run(x, 16);
    const m1 = tf.memory();
    t.is(m1.numTensors, m0.numTensors);
    t.is(m1.numBytes, m0.numBytes);
    t.is(m1.numDataBuffers, m0.numDataBuffers);
  } finally {
    await backend.dispose();
  }
  // dispose frees the model's weights too
  t.is(tf.memory().numTensors, 0);
});

test.serial('tfjs-wasm: a manifest claiming a 10x10 input or 5 classes is refused, naming model.json and the shapes', async (t) => {
  const dir = copyFixture('tiny-gray');
  const mj = path.join(dir, 'tfjs', 'model.json');
  try {
    const m = readManifest(dir);
    m.input.height = 10;
    m.input.width = 10;
    writeManifest(dir, m);
    let e = await t.throwsAsync(createBackend(dir, 'tfjs-wasm'), { instanceOf: ModelError });
    t.is(e!.file, mj);
    t.true(e!.message.includes(mj) && e!.message.includes('[N,10,10,2]') && e!.message.includes('[?,8,8,2]'), e!.message);
    m.input.height = 8;
    m.input.width = 8;
    m.classes = ['a', 'b', 'c', 'd', 'e'];
    writeManifest(dir, m);
    e = await t.throwsAsync(createBackend(dir, 'tfjs-wasm'), { instanceOf: ModelError });
    t.true(e!.message.includes(mj) && e!.message.includes('[N,5]') && e!.message.includes('[?,3]'), e!.message);
    t.is(tf.memory().numTensors, 0, 'a refused model is disposed');
  } finally {
    rmTemp(dir);
  }
});

test.serial('tfjs-wasm: a model that outputs softmax probabilities instead of logits is refused', async (t) => {
  const dir = copyFixture('tiny-gray');
  try {
    const mj = path.join(dir, 'tfjs', 'model.json');
    const doc = JSON.parse(fs.readFileSync(mj, 'utf8'));
    const last = doc.modelTopology.config.layers.find((l: { config: { name: string } }) => l.config.name === 'logits');
    last.config.activation = 'softmax';
    fs.writeFileSync(mj, JSON.stringify(doc));
    const m = readManifest(dir);
    m.formats.tfjs.sha256 = await hashModelFormat('tfjs', mj);
    writeManifest(dir, m);
    const e = await t.throwsAsync(createBackend(dir, 'tfjs-wasm'), { instanceOf: ModelError });
    t.true(e!.message.includes(mj) && /softmax/.test(e!.message), e!.message);
  } finally {
    rmTemp(dir);
  }
});

test.serial('tfjs-wasm: tampered weights after loadModel are caught by the backend; a wrong pin is refused', async (t) => {
  const dir = copyFixture('tiny-rgb');
  try {
    const model = await loadModel(dir);
    const pinned = model.formats.tfjs!.sha256;
    const e1 = await t.throwsAsync(createTfjsBackend(model, 'tfjs-wasm', { expectSha256: '0'.repeat(64) }), { instanceOf: ModelError });
    t.regex(e1!.message, /pins 0{64}/);
    const bin = path.join(dir, 'tfjs', 'group1-shard1of1.bin');
    const buf = fs.readFileSync(bin);
    buf[buf.length - 1]! ^= 0x10;
    fs.writeFileSync(bin, buf);
    const e2 = await t.throwsAsync(createTfjsBackend(model, 'tfjs-wasm'), { instanceOf: ModelError });
    t.true(/sha256 mismatch/.test(e2!.message) && e2!.message.includes(pinned) && e2!.message.includes('group1-shard1of1.bin'), e2!.message);
    fs.rmSync(bin);
    const e3 = await t.throwsAsync(createTfjsBackend(model, 'tfjs-wasm'), { instanceOf: ModelError });
    t.true(e3!.message.includes(bin) && /not found/.test(e3!.message), e3!.message);
  } finally {
    rmTemp(dir);
  }
});
