import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import {
  DatasetError,
  FASHION_MNIST_CLASSES,
  MNIST_CLASSES,
  createImageReader,
  indexDataset,
} from '../../worker/datasets/index.js';
import { idxImagesBytes, idxSet, removeDir, tempDir, toUnit, truncateFile, writeIdx } from '../helpers/fixtures-images.js';

const G = { height: 5, width: 4, channels: 1 };
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('plain and gzipped IDX give identical items and pixels; labels and digit class names', async (t) => {
  const dir = await tempDir();
  try {
    const s = idxSet(6, 5, 4, 1);
    await writeIdx(path.join(dir, 'plain'), s);
    await writeIdx(path.join(dir, 'gz'), s, { gzip: true });
    const a = await indexDataset({ format: 'idx', path: path.join(dir, 'plain') }, G);
    const b = await indexDataset({ format: 'idx', path: path.join(dir, 'gz') }, G);
    t.deepEqual(a.classNames, MNIST_CLASSES);
    t.deepEqual(
      a.items.map((i) => i.label),
      s.labels,
    );
    t.deepEqual(
      b.items.map((i) => [i.index, i.label]),
      a.items.map((i) => [i.index, i.label]),
    );
    t.is(a.items[2]!.source, `${path.join(dir, 'plain', 't10k-images-idx3-ubyte')}#2`);
    t.is(b.items[2]!.source, `${path.join(dir, 'gz', 't10k-images-idx3-ubyte.gz')}#2`);
    const ra = createImageReader({ format: 'idx', path: path.join(dir, 'plain') }, G);
    const rb = createImageReader({ format: 'idx', path: path.join(dir, 'gz') }, G);
    for (let i = 0; i < 6; i++) {
      const pa = await ra.read(a.items[i]!);
      t.deepEqual(pa, toUnit(s.images[i]!));
      t.deepEqual(await rb.read(b.items[i]!), pa);
    }
    t.deepEqual((await rb.readBatch(b.items.slice(4))).subarray(20), toUnit(s.images[5]!));
    await ra.close();
    await rb.close();
  } finally {
    await removeDir(dir);
  }
});

test('train split, images file as path (labels found beside it), fashion class names', async (t) => {
  const dir = await tempDir();
  try {
    const test_ = idxSet(3, 5, 4, 2);
    const train = idxSet(4, 5, 4, 3);
    const fdir = path.join(dir, 'my-fashion-data');
    await writeIdx(fdir, test_, { gzip: true });
    const tr = await writeIdx(fdir, train, { prefix: 'train' });
    const idx = await indexDataset({ format: 'idx', path: fdir, split: 'train' }, G);
    t.is(idx.items.length, 4);
    t.deepEqual(idx.classNames, FASHION_MNIST_CLASSES);
    const byFile = await indexDataset({ format: 'idx', path: tr.images }, G);
    t.deepEqual(byFile.items, idx.items);
    t.is(byFile.manifestSha256, idx.manifestSha256);
    const r = createImageReader({ format: 'idx', path: tr.images }, G);
    t.deepEqual(await r.read(idx.items[3]!), toUnit(train.images[3]!));
    await r.close();
  } finally {
    await removeDir(dir);
  }
});

test('bad magic, count mismatch, truncation, geometry and labels are errors naming the file', async (t) => {
  const dir = await tempDir();
  try {
    const s = idxSet(4, 5, 4, 4);

    const magic = await writeIdx(path.join(dir, 'magic'), s, { imagesMagic: 0x00000801 });
    await t.throwsAsync(indexDataset({ format: 'idx', path: path.join(dir, 'magic') }, G), {
      instanceOf: DatasetError,
      message: new RegExp(`^${esc(magic.images)}: bad IDX magic 0x00000801, expected 0x00000803`),
    });
    const magicGz = await writeIdx(path.join(dir, 'magicgz'), s, { imagesMagic: 0x00000c03, gzip: true });
    await t.throwsAsync(indexDataset({ format: 'idx', path: magicGz.images }, G), {
      message: new RegExp(`^${esc(magicGz.images)}: bad IDX magic 0x00000c03`),
    });

    const count = await writeIdx(path.join(dir, 'count'), s, { labels: [1, 2, 3] });
    const e1 = await t.throwsAsync(indexDataset({ format: 'idx', path: path.join(dir, 'count') }, G), { instanceOf: DatasetError });
    t.true(e1!.message.includes(count.images) && e1!.message.includes(count.labels));
    t.regex(e1!.message, /4 images .* 3 labels/);

    const trunc = await writeIdx(path.join(dir, 'trunc'), s);
    await truncateFile(trunc.images, -7);
    await t.throwsAsync(indexDataset({ format: 'idx', path: path.join(dir, 'trunc') }, G), {
      message: new RegExp(`^${esc(trunc.images)}: 89 bytes but the header \\(4 images of 5x4\\) needs 96 \\(truncated\\)`),
    });
    // A header that claims more images than the file holds is caught the same way.
    await fsp.mkdir(path.join(dir, 'claims'));
    const claims = path.join(dir, 'claims', 't10k-images-idx3-ubyte');
    await fsp.writeFile(claims, idxImagesBytes(s, 0x803, 9));
    await fsp.copyFile(trunc.labels, path.join(dir, 'claims', 't10k-labels-idx1-ubyte'));
    await t.throwsAsync(indexDataset({ format: 'idx', path: claims }, G), { message: new RegExp(`^${esc(claims)}: .*needs`) });

    const gzTrunc = await writeIdx(path.join(dir, 'gztrunc'), s, { gzip: true });
    await truncateFile(gzTrunc.images, -10);
    await t.throwsAsync(indexDataset({ format: 'idx', path: path.join(dir, 'gztrunc') }, G), {
      message: new RegExp(`^${esc(gzTrunc.images)}: corrupt or truncated gzip data`),
    });

    const ok = await writeIdx(path.join(dir, 'ok'), s);
    await t.throwsAsync(indexDataset({ format: 'idx', path: ok.images }, { height: 28, width: 28, channels: 1 }), {
      message: new RegExp(`^${esc(ok.images)}: IDX images are 5x4x1 .* expects 28x28x1`),
    });
    await t.throwsAsync(indexDataset({ format: 'idx', path: ok.images }, { height: 5, width: 4, channels: 3 }), { instanceOf: DatasetError });

    const lab = await writeIdx(path.join(dir, 'lab'), s, { labels: [1, 2, 10, 3] });
    await t.throwsAsync(indexDataset({ format: 'idx', path: lab.images }, G), { message: `${lab.labels}#2: label 10 is out of range for 10 classes` });

    await fsp.mkdir(path.join(dir, 'nolabels'));
    const lone = path.join(dir, 'nolabels', 't10k-images-idx3-ubyte');
    await fsp.copyFile(ok.images, lone);
    await t.throwsAsync(indexDataset({ format: 'idx', path: lone }, G), { instanceOf: DatasetError, message: /labels file not found beside/ });
    await t.throwsAsync(indexDataset({ format: 'idx', path: path.join(dir, 'nolabels') }, G), { message: /IDX labels file not found/ });
    await t.throwsAsync(indexDataset({ format: 'idx', path: path.join(dir, 'ok'), split: 'train' }, G), {
      message: new RegExp(`IDX images file not found: ${esc(path.join(dir, 'ok', 'train-images-idx3-ubyte'))}`),
    });

    // The reader reports the same errors, naming the file.
    const r = createImageReader({ format: 'idx', path: path.join(dir, 'magic') }, G);
    await t.throwsAsync(r.read({ index: 0, label: s.labels[0]!, source: `${magic.images}#0` }), { message: new RegExp(`^${esc(magic.images)}`) });
    await r.close();
  } finally {
    await removeDir(dir);
  }
});

const FASHION = '/usr/share/datasets/fashion-mnist';

test('Fashion-MNIST from the Debian package (when installed)', async (t) => {
  if (!existsSync(path.join(FASHION, 't10k-images-idx3-ubyte.gz'))) {
    t.log(`${FASHION} not present: skipped`);
    t.pass();
    return;
  }
  const g = { height: 28, width: 28, channels: 1 };
  const idx = await indexDataset({ format: 'idx', path: FASHION }, g);
  t.is(idx.items.length, 10000);
  t.deepEqual(idx.classNames, FASHION_MNIST_CLASSES);
  // The test split is balanced: 1000 images per class.
  const perClass = new Array(10).fill(0);
  for (const it of idx.items) perClass[it.label]++;
  t.deepEqual(perClass, new Array(10).fill(1000));
  t.is(idx.items[0]!.label, 9); // the first test image is an ankle boot
  const r = createImageReader({ format: 'idx', path: FASHION }, g);
  const px = await r.read(idx.items[0]!);
  t.is(px.length, 784);
  let mean = 0;
  for (const v of px) {
    t.true(v >= 0 && v <= 1);
    mean += v;
  }
  t.true(mean / 784 > 0.05 && mean / 784 < 0.9);
  const t0 = performance.now();
  const batch = await r.readBatch(idx.items);
  t.log(`read all 10000 Fashion-MNIST test images in ${(performance.now() - t0).toFixed(0)} ms`);
  t.is(batch.length, 10000 * 784);
  await r.close();
});
