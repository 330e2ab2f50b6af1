import { promises as fsp } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { CIFAR10_CLASSES, DatasetError, createImageReader, indexDataset } from '../../worker/datasets/index.js';
import { cifarRecords, removeDir, tempDir, toUnit, truncateFile, writeCifarBatch, writeCifarFolder } from '../helpers/fixtures-images.js';

const G = { height: 32, width: 32, channels: 3 };

test('test split: labels, HWC order from the planar layout, exact floats', async (t) => {
  const dir = await tempDir();
  try {
    const recs = cifarRecords(5, 1);
    await writeCifarFolder(dir, { test: recs });
    const idx = await indexDataset({ format: 'cifar10-bin', path: dir }, G);
    t.is(idx.items.length, 5);
    t.deepEqual(idx.classNames, CIFAR10_CLASSES);
    t.deepEqual(
      idx.items.map((i) => i.label),
      recs.map((r) => r.label),
    );
    t.is(idx.items[3]!.source, `${path.join(dir, 'test_batch.bin')}#3`);
    t.deepEqual([idx.height, idx.width, idx.channels], [32, 32, 3]);
    t.regex(idx.manifestSha256, /^[0-9a-f]{64}$/);

    const reader = createImageReader({ format: 'cifar10-bin', path: dir }, G);
    for (const item of idx.items) {
      const px = await reader.read(item);
      t.is(px.length, 3072);
      t.deepEqual(px, toUnit(recs[item.index]!.hwc));
    }
    // Spot-check the layout by hand: pixel (y=2, x=5) channel G sits at planar offset 1024 + 2*32 + 5.
    const raw = await fsp.readFile(path.join(dir, 'test_batch.bin'));
    const px1 = await reader.read(idx.items[1]!);
    t.is(px1[(2 * 32 + 5) * 3 + 1], Math.fround(raw[3073 + 1 + 1024 + 2 * 32 + 5]! / 255));
    t.is(px1[(31 * 32 + 31) * 3 + 2], Math.fround(raw[3073 + 1 + 2048 + 1023]! / 255));
    const batch = await reader.readBatch(idx.items.slice(1, 4));
    t.deepEqual(batch.subarray(3072, 6144), toUnit(recs[2]!.hwc));
    await reader.close();
    await t.throwsAsync(reader.read(idx.items[0]!), { instanceOf: DatasetError, message: /closed/ });
  } finally {
    await removeDir(dir);
  }
});

test('train split spans data_batch_1..5 in order; class names from batches.meta.txt', async (t) => {
  const dir = await tempDir();
  try {
    const train = [0, 1, 2, 3, 4].map((b) => cifarRecords(b + 1, 10 + b));
    const meta = ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9'];
    await writeCifarFolder(dir, { test: cifarRecords(2, 3), train, meta });
    const idx = await indexDataset({ format: 'cifar10-bin', path: dir, split: 'train' }, G);
    t.deepEqual(idx.classNames, meta);
    t.is(idx.items.length, 1 + 2 + 3 + 4 + 5);
    const flat = train.flat();
    t.deepEqual(
      idx.items.map((i) => i.index),
      flat.map((_, i) => i),
    );
    t.is(idx.items[1]!.source, `${path.join(dir, 'data_batch_2.bin')}#0`);
    t.is(idx.items[14]!.source, `${path.join(dir, 'data_batch_5.bin')}#4`);
    const reader = createImageReader({ format: 'cifar10-bin', path: dir, split: 'train' }, G);
    for (const k of [0, 1, 5, 9, 14]) t.deepEqual(await reader.read(idx.items[k]!), toUnit(flat[k]!.hwc));
    await reader.close();
  } finally {
    await removeDir(dir);
  }
});

test('path may be one .bin file or the folder holding cifar-10-batches-bin', async (t) => {
  const dir = await tempDir();
  try {
    const recs = cifarRecords(3, 4);
    const inner = path.join(dir, 'cifar-10-batches-bin');
    await writeCifarFolder(inner, { test: recs });
    const a = await indexDataset({ format: 'cifar10-bin', path: dir }, G);
    const b = await indexDataset({ format: 'cifar10-bin', path: path.join(inner, 'test_batch.bin') }, G);
    const c = await indexDataset({ format: 'cifar10-bin', path: inner }, G);
    t.deepEqual(a.items, b.items);
    t.is(a.manifestSha256, b.manifestSha256);
    t.is(a.manifestSha256, c.manifestSha256);
    const r = createImageReader({ format: 'cifar10-bin', path: path.join(inner, 'test_batch.bin') }, G);
    t.deepEqual(await r.read(b.items[2]!), toUnit(recs[2]!.hwc));
    await r.close();
  } finally {
    await removeDir(dir);
  }
});

test('a truncated batch file is an error naming it', async (t) => {
  const dir = await tempDir();
  try {
    await writeCifarFolder(dir, { test: cifarRecords(3, 5) });
    const file = path.join(dir, 'test_batch.bin');
    await truncateFile(file, -100);
    const err = await t.throwsAsync(indexDataset({ format: 'cifar10-bin', path: dir }, G), { instanceOf: DatasetError });
    t.true(err!.message.includes(file));
    t.regex(err!.message, /not a positive multiple of .*3073/);
    t.is(err!.source, file);
    const r = createImageReader({ format: 'cifar10-bin', path: dir }, G);
    const e2 = await t.throwsAsync(r.read({ index: 0, label: 5, source: `${file}#0` }), { instanceOf: DatasetError });
    t.true(e2!.message.includes(file));
    await r.close();
  } finally {
    await removeDir(dir);
  }
});

test('missing files, wrong geometry, bad labels and resize options are clear errors', async (t) => {
  const dir = await tempDir();
  try {
    await t.throwsAsync(indexDataset({ format: 'cifar10-bin', path: path.join(dir, 'nope') }, G), {
      instanceOf: DatasetError,
      message: `data set path not found: ${path.join(dir, 'nope')}`,
    });
    await writeCifarFolder(dir, { test: cifarRecords(2, 6) });
    await t.throwsAsync(indexDataset({ format: 'cifar10-bin', path: dir, split: 'train' }, G), {
      instanceOf: DatasetError,
      message: new RegExp(`batch file not found: ${path.join(dir, 'data_batch_1.bin').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
    });
    const e = await t.throwsAsync(indexDataset({ format: 'cifar10-bin', path: dir }, { height: 28, width: 28, channels: 1 }), {
      instanceOf: DatasetError,
    });
    t.regex(e!.message, /32x32x3 .* expects 28x28x1/);
    t.true(e!.message.includes(path.join(dir, 'test_batch.bin')));
    await t.throwsAsync(indexDataset({ format: 'cifar10-bin', path: dir, resize: 40 }, G), { message: /imagefolder data sets only/ });

    const bad = path.join(dir, 'bad', 'test_batch.bin');
    await writeCifarBatch(bad, [
      { label: 1, hwc: new Uint8Array(3072) },
      { label: 12, hwc: new Uint8Array(3072) },
    ]);
    await t.throwsAsync(indexDataset({ format: 'cifar10-bin', path: bad }, G), {
      instanceOf: DatasetError,
      message: `${bad}#1: label 12 is out of range for 10 classes`,
    });
    // A reader given an item whose label disagrees with the file refuses it.
    const r = createImageReader({ format: 'cifar10-bin', path: dir }, G);
    const idx = await indexDataset({ format: 'cifar10-bin', path: dir }, G);
    await t.throwsAsync(r.read({ ...idx.items[0]!, label: (idx.items[0]!.label + 1) % 10 }), { instanceOf: DatasetError, message: /label in the file/ });
    await t.throwsAsync(r.read({ index: 2, label: 0, source: 'x#2' }), { instanceOf: DatasetError, message: /out of range/ });
    await r.close();
  } finally {
    await removeDir(dir);
  }
});
