// Manifests and sessions of band-native (kept-view) models: what is accepted, and the clear
// errors for what is not.
import test from 'ava';
import path from 'node:path';
import { createBackend } from '../../worker/backends/index.js';
import { validateManifest } from '../../worker/model.js';
import { ModelError } from '../../worker/types.js';
import { copyFixture, fixture, readManifest, rmTemp, writeManifest } from './helpers.js';

const m0 = () => readManifest(fixture('tiny-kept'));

test('tiny-kept manifest: inputView "kept" is read; other values are refused naming the field', (t) => {
  t.is(validateManifest(m0(), 'm.json').inputView, 'kept');
  const bad = { ...m0(), inputView: 'band' };
  t.throws(() => validateManifest(bad, 'm.json'), { message: /m\.json: field "inputView" must be one of "full", "kept", got "band"/ });
  const full = { ...m0() };
  delete full.inputView;
  t.throws(() => validateManifest(full, 'm.json'), { message: /formats\.onnx\.positionName" is only meaningful for inputView "kept"/ });
});

test('a kept-view manifest listing a tfjs format is refused (ONNX only)', (t) => {
  const m = { ...m0(), formats: { ...m0().formats, tfjs: { file: 'tfjs/model.json', sha256: 'a'.repeat(64), layout: 'nhwc' } } };
  t.throws(() => validateManifest(m, 'm.json'), { message: /formats\.tfjs" is not supported for inputView "kept"/ });
});

test('a dense model declared as kept-view is refused at load, naming the file and the missing position input', async (t) => {
  const dir = copyFixture('tiny-gray');
  try {
    const m = readManifest(dir);
    m.inputView = 'kept';
    delete m.formats.tfjs;
    writeManifest(dir, m);
    const e = await t.throwsAsync(createBackend(dir, 'onnx'), { instanceOf: ModelError });
    t.true(e!.message.includes(path.join(dir, 'model.onnx')), e!.message);
    t.regex(e!.message, /no position input "position"/);
  } finally {
    rmTemp(dir);
  }
});

test('a kept-view model whose manifest drops inputView is refused: the graph has two inputs', async (t) => {
  const dir = copyFixture('tiny-kept');
  try {
    const m = readManifest(dir);
    delete m.inputView;
    delete m.formats.onnx.positionName;
    writeManifest(dir, m);
    const e = await t.throwsAsync(createBackend(dir, 'onnx'), { instanceOf: ModelError });
    t.regex(e!.message, /the graph has 2 inputs \(input, position\); patchcert feeds exactly one/);
  } finally {
    rmTemp(dir);
  }
});

test('kept-view backend: run() without positions is a clear error', async (t) => {
  const { backend } = await createBackend(fixture('tiny-kept'), 'onnx', { threads: 1 });
  t.teardown(() => backend.dispose());
  const x = new Float32Array(6 * 8 * 4);
  await t.throwsAsync(backend.run(x, 1), { message: /takes the kept view and needs 2 position values/ });
});
