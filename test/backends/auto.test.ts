// createBackend: 'auto' order and fallback with reasons, explicit names, pinned formats and hashes.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { BACKEND_NAMES, createBackend } from '../../worker/backends/index.js';
import { loadModel } from '../../worker/model.js';
import { ModelError } from '../../worker/types.js';
import { copyFixture, fixture, readManifest, rmTemp, writeManifest } from './helpers.js';

async function installed(spec: string): Promise<boolean> {
  try {
    await import(spec);
    return true;
  } catch {
    return false;
  }
}

// what this machine has decides what auto may take; the test checks the fallback either way
const nativeGpu = await installed('@tensorflow/tfjs-node-gpu');
const nativeCpu = await installed('@tensorflow/tfjs-node');

test.serial('auto tries cuda, webgpu, tfjs-node-gpu, tfjs-node, onnx, tfjs-wasm in order and reports why it skipped each', async (t) => {
  const sel = await createBackend(fixture('tiny-gray'), 'auto', { threads: 1 });
  try {
    const taken = sel.backend.name;
    t.deepEqual(
      sel.skipped.map((s) => s.name),
      BACKEND_NAMES.slice(0, BACKEND_NAMES.indexOf(taken)),
    );
    for (const s of sel.skipped) t.true(s.reason.length > 10, s.reason);
    const reason = (n: string) => sel.skipped.find((s) => s.name === n)?.reason ?? '';
    if (!nativeGpu && !nativeCpu && taken !== 'cuda' && taken !== 'webgpu') {
      t.is(taken, 'onnx');
      t.regex(reason('cuda'), /^backend cuda: onnxruntime-node has no CUDA provider here/);
      t.regex(reason('webgpu'), /^(no WebGPU adapter|the only adapter is a software fallback)/);
      t.regex(reason('tfjs-node-gpu'), /^tfjs-node-gpu is not installed \(optional dependency; libtensorflow download failed/);
      t.regex(reason('tfjs-node'), /^tfjs-node is not installed \(optional dependency; libtensorflow download failed/);
    }
    t.log(`auto took ${taken} (${sel.backend.device}); skipped: ${sel.skipped.map((s) => `${s.name}: ${s.reason}`).join(' | ') || 'none'}`);
  } finally {
    await sel.backend.dispose();
  }
});

test.serial('auto without an onnx format falls through to a TF.js backend (tfjs-wasm here)', async (t) => {
  const dir = copyFixture('tiny-rgb');
  try {
    const m = readManifest(dir);
    delete m.formats.onnx;
    writeManifest(dir, m);
    fs.rmSync(path.join(dir, 'model.onnx'));
    const sel = await createBackend(dir, 'auto');
    try {
      const onnx = sel.skipped.find((s) => s.name === 'onnx');
      if (!nativeGpu && !nativeCpu) {
        t.is(sel.backend.name, 'tfjs-wasm');
        t.deepEqual(sel.skipped.map((s) => s.name), ['cuda', 'webgpu', 'tfjs-node-gpu', 'tfjs-node', 'onnx']);
        t.is(sel.skipped[0]!.reason, 'the manifest has no onnx format');
        t.is(onnx!.reason, 'the manifest has no onnx format');
      }
      t.not(sel.backend.name, 'onnx');
    } finally {
      await sel.backend.dispose();
    }
  } finally {
    rmTemp(dir);
  }
});

test.serial('auto honours a pinned format', async (t) => {
  const onnx = await createBackend(fixture('tiny-gray'), 'auto', { format: 'onnx' });
  await onnx.backend.dispose();
  if (onnx.backend.name === 'onnx') {
    // the GPU backends run the onnx format too: skipped here for want of a (hardware) device
    t.deepEqual(onnx.skipped.map((s) => s.name), ['cuda', 'webgpu', 'tfjs-node-gpu', 'tfjs-node']);
    t.deepEqual(onnx.skipped.slice(2), [
      { name: 'tfjs-node-gpu', reason: 'runs the tfjs format; the onnx format is pinned' },
      { name: 'tfjs-node', reason: 'runs the tfjs format; the onnx format is pinned' },
    ]);
  } else {
    t.true(['cuda', 'webgpu'].includes(onnx.backend.name));
  }
  const tfjs = await createBackend(fixture('tiny-gray'), 'auto', { format: 'tfjs' });
  await tfjs.backend.dispose();
  t.not(tfjs.backend.name, 'onnx');
  if (!nativeGpu && !nativeCpu) {
    t.is(tfjs.backend.name, 'tfjs-wasm');
    t.deepEqual(tfjs.skipped.find((s) => s.name === 'onnx'), { name: 'onnx', reason: 'runs the onnx format; the tfjs format is pinned' });
    t.deepEqual(tfjs.skipped.find((s) => s.name === 'webgpu'), { name: 'webgpu', reason: 'runs the onnx format; the tfjs format is pinned' });
  }
});

test.serial('auto does not hide a bad model behind another backend', async (t) => {
  const dir = copyFixture('tiny-gray');
  try {
    const m = readManifest(dir);
    m.classes = ['a', 'b', 'c', 'd', 'e'];
    writeManifest(dir, m);
    const e = await t.throwsAsync(createBackend(dir, 'auto'), { instanceOf: ModelError });
    t.regex(e!.message, /\[N,5\]/);
    const model = await loadModel(fixture('tiny-gray'));
    await t.throwsAsync(createBackend(model, 'auto', { expectSha256: 'a'.repeat(64) }), { instanceOf: ModelError, message: /pins a{64}/ });
  } finally {
    rmTemp(dir);
  }
});

test.serial('explicit backends: a missing optional package is a clear error; unknown names are refused', async (t) => {
  if (!nativeCpu) {
    await t.throwsAsync(createBackend(fixture('tiny-gray'), 'tfjs-node'), {
      message: 'tfjs-node is not installed (optional dependency; libtensorflow download failed at install time or it was skipped)',
    });
  }
  if (!nativeGpu) {
    await t.throwsAsync(createBackend(fixture('tiny-gray'), 'tfjs-node-gpu'), { message: /^tfjs-node-gpu is not installed \(optional dependency/ });
  }
  await t.throwsAsync(createBackend(fixture('tiny-gray'), 'opencl' as never), {
    message: /unknown backend "opencl" \(expected auto, cuda, webgpu, tfjs-node-gpu, tfjs-node, onnx, tfjs-wasm, tensorrt\)/,
  });
  await t.throwsAsync(createBackend(fixture('tiny-gray'), 'onnx', { format: 'tfjs' }), { message: /backend onnx runs the onnx format/ });
  await t.throwsAsync(createBackend(fixture('tiny-gray'), 'onnx', { threads: 0 }), { message: /threads must be a positive integer/ });
  const dir = copyFixture('tiny-gray');
  try {
    const m = readManifest(dir);
    delete m.formats.tfjs;
    writeManifest(dir, m);
    const e = await t.throwsAsync(createBackend(dir, 'tfjs-wasm'), { instanceOf: ModelError });
    t.regex(e!.message, /backend tfjs-wasm needs the tfjs format, but the manifest lists only onnx/);
  } finally {
    rmTemp(dir);
  }
});
