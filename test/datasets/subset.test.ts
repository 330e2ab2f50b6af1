import { promises as fsp } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { DatasetError, createImageReader, indexDataset } from '../../worker/datasets/index.js';
import { cifarRecords, idxSet, removeDir, rgbImage, tempDir, toUnit, writeCifarFolder, writeIdx, writeImageFolder } from '../helpers/fixtures-images.js';

const G = { height: 32, width: 32, channels: 3 };

test('index file (its order, comments, blank lines), then offset, then limit', async (t) => {
  const dir = await tempDir();
  try {
    const recs = cifarRecords(10, 1);
    await writeCifarFolder(path.join(dir, 'c'), { test: recs });
    const list = path.join(dir, 'subset.txt');
    await fsp.writeFile(list, '# hand-picked images\n7\n\n2   # a cat\r\n  9\n0\n5\n');
    const spec = { format: 'cifar10-bin' as const, path: path.join(dir, 'c'), indexFile: list };
    const a = await indexDataset(spec, G);
    t.deepEqual(
      a.items.map((i) => i.index),
      [7, 2, 9, 0, 5],
    );
    t.deepEqual(
      a.items.map((i) => i.label),
      [7, 2, 9, 0, 5].map((k) => recs[k]!.label),
    );
    const b = await indexDataset({ ...spec, offset: 1, limit: 3 }, G);
    t.deepEqual(
      b.items.map((i) => i.index),
      [2, 9, 0],
    );
    const c = await indexDataset({ format: 'cifar10-bin', path: path.join(dir, 'c'), offset: 8 }, G);
    t.deepEqual(
      c.items.map((i) => i.index),
      [8, 9],
    );
    const d = await indexDataset({ format: 'cifar10-bin', path: path.join(dir, 'c'), limit: 2 }, G);
    t.deepEqual(
      d.items.map((i) => i.index),
      [0, 1],
    );
    const r = createImageReader(spec, G);
    t.deepEqual(await r.read(b.items[1]!), toUnit(recs[9]!.hwc));
    await r.close();
    // different subsets, different manifests; the same subset, the same manifest
    const hashes = new Set([a, b, c, d].map((x) => x.manifestSha256));
    t.is(hashes.size, 4);
    t.is((await indexDataset({ ...spec, offset: 1, limit: 3 }, G)).manifestSha256, b.manifestSha256);
    t.deepEqual(b.spec, { ...spec, offset: 1, limit: 3 });
  } finally {
    await removeDir(dir);
  }
});

test('index file errors name the file and line', async (t) => {
  const dir = await tempDir();
  try {
    await writeCifarFolder(path.join(dir, 'c'), { test: cifarRecords(4, 2) });
    const spec = (indexFile: string) => ({ format: 'cifar10-bin' as const, path: path.join(dir, 'c'), indexFile });
    const cases: [string, string, RegExp][] = [
      ['range.txt', '0\n1\n4\n', /range\.txt:3: index 4 is out of range \(the data set has 4 images, 0\.\.3\)/],
      ['neg.txt', '1\n-1\n', /neg\.txt:2: "-1" is not a data set index/],
      ['float.txt', '\n\n2.5\n', /float\.txt:3: "2\.5" is not a data set index/],
      ['word.txt', 'three\n', /word\.txt:1: "three" is not a data set index/],
      ['dup.txt', '1\n2\n1\n', /dup\.txt:3: index 1 is listed twice \(first on line 1\)/],
    ];
    for (const [name, text, msg] of cases) {
      const file = path.join(dir, name);
      await fsp.writeFile(file, text);
      const e = await t.throwsAsync(indexDataset(spec(file), G), { instanceOf: DatasetError, message: msg });
      t.is(e!.source, file);
      t.true(e!.message.startsWith(`${file}:`));
    }
    const missing = path.join(dir, 'nope.txt');
    await t.throwsAsync(indexDataset(spec(missing), G), { message: `index file not found: ${missing}` });
    const empty = path.join(dir, 'empty.txt');
    await fsp.writeFile(empty, '# nothing\n');
    await t.throwsAsync(indexDataset(spec(empty), G), { message: /selects no images/ });
    await t.throwsAsync(indexDataset({ format: 'cifar10-bin', path: path.join(dir, 'c'), offset: 4 }, G), { message: /selects no images \(offset 4 of 4 images\)/ });
    await t.throwsAsync(indexDataset({ format: 'cifar10-bin', path: path.join(dir, 'c'), limit: -1 }, G), { message: /limit must be a non-negative integer/ });
    await t.throwsAsync(indexDataset({ format: 'cifar10-bin', path: path.join(dir, 'c'), offset: 1.5 }, G), { message: /offset must be a non-negative integer/ });
  } finally {
    await removeDir(dir);
  }
});

test('the manifest ignores where the data set is mounted but not what it holds', async (t) => {
  const dir = await tempDir();
  try {
    const s = idxSet(5, 3, 3, 1);
    await writeIdx(path.join(dir, 'm1'), s, { gzip: true });
    await writeIdx(path.join(dir, 'm2', 'deeper'), s, { gzip: true });
    const g = { height: 3, width: 3, channels: 1 };
    const a = await indexDataset({ format: 'idx', path: path.join(dir, 'm1') }, g);
    const b = await indexDataset({ format: 'idx', path: path.join(dir, 'm2', 'deeper') }, g);
    t.is(a.manifestSha256, b.manifestSha256);
    const labels = [...s.labels];
    labels[4] = (labels[4]! + 1) % 10;
    await writeIdx(path.join(dir, 'm3'), s, { gzip: true, labels });
    const c = await indexDataset({ format: 'idx', path: path.join(dir, 'm3') }, g);
    t.not(c.manifestSha256, a.manifestSha256);
    await writeIdx(path.join(dir, 'm4'), s); // plain file names differ from .gz ones
    const d = await indexDataset({ format: 'idx', path: path.join(dir, 'm4') }, g);
    t.not(d.manifestSha256, a.manifestSha256);

    await writeImageFolder(path.join(dir, 'f1'), { a: [rgbImage('1.png', 'png', 1)], b: [rgbImage('2.png', 'png', 2)] });
    await writeImageFolder(path.join(dir, 'f2'), { a: [rgbImage('1.png', 'png', 1)], b: [rgbImage('2.png', 'png', 2)] });
    await writeImageFolder(path.join(dir, 'f3'), { a: [rgbImage('1.png', 'png', 1)], c: [rgbImage('2.png', 'png', 2)] });
    const g8 = { height: 8, width: 8, channels: 3 };
    const f1 = await indexDataset({ format: 'imagefolder', path: path.join(dir, 'f1') }, g8);
    const f2 = await indexDataset({ format: 'imagefolder', path: path.join(dir, 'f2') }, g8);
    const f3 = await indexDataset({ format: 'imagefolder', path: path.join(dir, 'f3') }, g8);
    t.is(f1.manifestSha256, f2.manifestSha256);
    t.not(f1.manifestSha256, f3.manifestSha256);
    t.not(f1.manifestSha256, (await indexDataset({ format: 'imagefolder', path: path.join(dir, 'f1') }, { ...g8, channels: 1 })).manifestSha256);
  } finally {
    await removeDir(dir);
  }
});
