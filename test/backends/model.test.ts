// loadModel: manifest validation, file resolution, sha256 of each format, tampering, missing files.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { MANIFEST_FILE, formatWithHash, hashModelFormat, loadModel, validateManifest } from '../../worker/model.js';
import { ModelError } from '../../worker/types.js';
import { TINY, copyFixture, fixture, readManifest, rmTemp, sha256, writeManifest } from './helpers.js';

for (const name of TINY) {
  test(`${name}: loads from the folder and from the manifest file, hashes match the manifest`, async (t) => {
    const a = await loadModel(fixture(name));
    const b = await loadModel(path.join(fixture(name), MANIFEST_FILE));
    t.is(a.manifestPath, b.manifestPath);
    t.is(a.manifest.name, name);
    const raw = readManifest(fixture(name));
    t.is(a.formats.onnx!.sha256, raw.formats.onnx.sha256);
    t.is(a.formats.tfjs!.sha256, raw.formats.tfjs.sha256);
    t.is(a.formats.onnx!.path, path.join(fixture(name), 'model.onnx'));
    t.deepEqual(a.formats.tfjs!.files.map((f) => path.relative(fixture(name), f)), ['tfjs/model.json', 'tfjs/group1-shard1of1.bin']);
    t.is(a.manifestSha256, sha256(fs.readFileSync(a.manifestPath)));
    // the exported hash function computes the same values (a job pins these)
    t.is(await hashModelFormat('onnx', a.formats.onnx!.path), raw.formats.onnx.sha256);
    t.is(await hashModelFormat('tfjs', a.formats.tfjs!.path), raw.formats.tfjs.sha256);
    t.is(formatWithHash(a, raw.formats.tfjs.sha256), 'tfjs');
    t.is(formatWithHash(a, raw.formats.onnx.sha256), 'onnx');
    t.is(formatWithHash(a, '0'.repeat(64)), undefined);
  });
}

test('tfjs hash = sha256(model.json bytes ++ weight files in weightsManifest order)', async (t) => {
  const dir = fixture('tiny-gray');
  const json = fs.readFileSync(path.join(dir, 'tfjs/model.json'));
  const bin = fs.readFileSync(path.join(dir, 'tfjs/group1-shard1of1.bin'));
  t.is(await hashModelFormat('tfjs', path.join(dir, 'tfjs/model.json')), sha256(Buffer.concat([json, bin])));
});

test('a flipped byte in the tfjs weights: sha256 mismatch naming the file and both hashes', async (t) => {
  const dir = copyFixture('tiny-gray');
  try {
    const bin = path.join(dir, 'tfjs', 'group1-shard1of1.bin');
    const buf = fs.readFileSync(bin);
    buf[100]! ^= 0x01;
    fs.writeFileSync(bin, buf);
    const declared = readManifest(dir).formats.tfjs.sha256;
    const actual = await hashModelFormat('tfjs', path.join(dir, 'tfjs', 'model.json'));
    t.not(actual, declared);
    const e = await t.throwsAsync(loadModel(dir), { instanceOf: ModelError });
    t.regex(e!.message, /sha256 mismatch/);
    t.true(e!.message.includes(path.join(dir, 'tfjs', 'model.json')), e!.message);
    t.true(e!.message.includes('group1-shard1of1.bin'), e!.message);
    t.true(e!.message.includes(declared) && e!.message.includes(actual), e!.message);
    // verify: false skips the check (e.g. to re-hash a model being edited)
    const m = await loadModel(dir, { verify: false });
    t.is(m.formats.tfjs!.sha256, actual);
  } finally {
    rmTemp(dir);
  }
});

test('a flipped byte in model.onnx: sha256 mismatch naming the file and both hashes', async (t) => {
  const dir = copyFixture('tiny-rgb');
  try {
    const f = path.join(dir, 'model.onnx');
    const buf = fs.readFileSync(f);
    buf[buf.length - 10]! ^= 0x80;
    fs.writeFileSync(f, buf);
    const e = await t.throwsAsync(loadModel(dir), { instanceOf: ModelError });
    t.is(e!.file, f);
    t.true(e!.message.includes(f), e!.message);
    t.true(e!.message.includes(readManifest(dir).formats.onnx.sha256), e!.message);
    t.true(e!.message.includes(sha256(buf)), e!.message);
    // only the untouched format: loads
    const m = await loadModel(dir, { formats: ['tfjs'] });
    t.truthy(m.formats.tfjs);
    t.is(m.formats.onnx, undefined);
  } finally {
    rmTemp(dir);
  }
});

test('missing files are errors naming them', async (t) => {
  const dir = copyFixture('tiny-gray');
  try {
    fs.rmSync(path.join(dir, 'tfjs', 'group1-shard1of1.bin'));
    let e = await t.throwsAsync(loadModel(dir), { instanceOf: ModelError });
    t.true(e!.message.includes(path.join(dir, 'tfjs', 'group1-shard1of1.bin')), e!.message);
    t.regex(e!.message, /not found/);
    fs.rmSync(path.join(dir, 'model.onnx'));
    e = await t.throwsAsync(loadModel(dir), { instanceOf: ModelError });
    t.true(e!.message.includes(path.join(dir, 'model.onnx')), e!.message);
    fs.rmSync(path.join(dir, MANIFEST_FILE));
    e = await t.throwsAsync(loadModel(dir), { instanceOf: ModelError });
    t.true(e!.message.includes(path.join(dir, MANIFEST_FILE)), e!.message);
    e = await t.throwsAsync(loadModel(path.join(dir, 'nope')), { instanceOf: ModelError });
    t.true(e!.message.includes(path.join(dir, 'nope')), e!.message);
  } finally {
    rmTemp(dir);
  }
});

test('a broken model.json is an error naming it', async (t) => {
  const dir = copyFixture('tiny-gray');
  try {
    const mj = path.join(dir, 'tfjs', 'model.json');
    fs.writeFileSync(mj, '{"modelTopology": {}, "weightsManifest": 3}');
    const e = await t.throwsAsync(loadModel(dir), { instanceOf: ModelError });
    t.true(e!.message.includes(mj), e!.message);
    t.regex(e!.message, /weightsManifest/);
    fs.writeFileSync(mj, '{not json');
    const e2 = await t.throwsAsync(loadModel(dir), { instanceOf: ModelError });
    t.true(e2!.message.includes(mj) && /not valid JSON/.test(e2!.message), e2!.message);
  } finally {
    rmTemp(dir);
  }
});

// ---------------------------------------------------------------- manifest validation: every field

const good = () => readManifest(fixture('tiny-gray'));
const FILE = '/models/x/model.manifest.json';

const badCases: Array<[string, (m: Record<string, any>) => void, RegExp]> = [
  ['schema', (m) => (m.schema = 'patchcert-model/2'), /"schema"/],
  ['name', (m) => (m.name = ''), /"name"/],
  ['input', (m) => delete m.input, /"input"/],
  ['input.height', (m) => (m.input.height = 0), /"input\.height"/],
  ['input.width', (m) => (m.input.width = 2.5), /"input\.width"/],
  ['input.channels', (m) => (m.input.channels = 2), /"input\.channels"/],
  ['encoding', (m) => (m.encoding = 'rgb'), /"encoding"/],
  ['ablation.kind', (m) => (m.ablation.kind = 'diagonal'), /"ablation\.kind"/],
  ['ablation.size', (m) => (m.ablation.size = -1), /"ablation\.size"/],
  ['ablation.stride', (m) => (m.ablation.stride = '1'), /"ablation\.stride"/],
  ['ablation too wide', (m) => (m.ablation.size = 9), /"ablation" is invalid: ablation size 9 exceeds/],
  ['normalization.mean', (m) => (m.normalization = { mean: [0], std: [1, 1] }), /"normalization" is invalid/],
  ['normalization.std', (m) => (m.normalization = { mean: [0, 0], std: 'x' }), /"normalization\.std"/],
  ['classes', (m) => (m.classes = 'a,b'), /"classes"/],
  ['classes too few', (m) => (m.classes = ['a']), /"classes" must name at least 2/],
  ['classes[1]', (m) => (m.classes[1] = 7), /"classes\[1\]"/],
  ['classes repeated', (m) => (m.classes[2] = m.classes[0]), /"classes\[2\]" repeats/],
  ['formats', (m) => (m.formats = {}), /"formats"/],
  ['formats.onnx.file', (m) => (m.formats.onnx.file = '/abs/model.onnx'), /"formats\.onnx\.file"/],
  ['formats.onnx.sha256', (m) => (m.formats.onnx.sha256 = 'abc'), /"formats\.onnx\.sha256"/],
  ['formats.tfjs.layout', (m) => (m.formats.tfjs.layout = 'hwc'), /"formats\.tfjs\.layout"/],
  ['formats.onnx.inputName', (m) => (m.formats.onnx.inputName = ''), /"formats\.onnx\.inputName"/],
  ['formats.tfjs.outputName', (m) => (m.formats.tfjs.outputName = 'y'), /"formats\.tfjs\.outputName"/],
  ['training', (m) => (m.training = 'yes'), /"training"/],
];

for (const [label, mutate, re] of badCases) {
  test(`manifest validation: ${label}`, (t) => {
    const m = good();
    mutate(m);
    const e = t.throws(() => validateManifest(m, FILE), { instanceOf: ModelError });
    t.regex(e!.message, re);
    t.true(e!.message.startsWith(FILE), e!.message);
    t.is(e!.file, FILE);
  });
}

test('manifest validation: a good manifest passes; optional fields may be absent; unknown formats are ignored', (t) => {
  const m = good();
  t.deepEqual(validateManifest(m, FILE), m);
  delete m.training;
  delete m.normalization;
  delete m.formats.onnx.inputName;
  m.formats.torchscript = { file: 'model.pt' };
  const v = validateManifest(m, FILE);
  t.is(v.normalization, undefined);
  t.false('torchscript' in v.formats);
  t.true(validateManifest({ ...good(), normalization: { mean: [0.5, 0.5], std: [0.25, 0.25] } }, FILE).normalization!.std[0] === 0.25);
});

test('an invalid manifest on disk: the error names the manifest file', async (t) => {
  const dir = copyFixture('tiny-rgb');
  try {
    const m = readManifest(dir);
    m.encoding = 'levine7';
    const p = writeManifest(dir, m);
    const e = await t.throwsAsync(loadModel(dir), { instanceOf: ModelError });
    t.true(e!.message.startsWith(p) && /"encoding"/.test(e!.message), e!.message);
    fs.writeFileSync(p, '{ "schema": ');
    const e2 = await t.throwsAsync(loadModel(dir), { instanceOf: ModelError });
    t.true(e2!.message.includes(p) && /not valid JSON/.test(e2!.message), e2!.message);
  } finally {
    rmTemp(dir);
  }
});
