// The real CIFAR-10 test split (JPEG q75 copy in ../shared/datasets), unpacked by the test itself
// into a temp folder. Skipped when the archive is not there.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { CIFAR10_CLASSES, createImageReader, indexDataset } from '../../worker/datasets/index.js';
import { removeDir, tempDir } from '../helpers/fixtures-images.js';
import { SHARED_DATASETS } from '../../lab/paths.js';

const ARCHIVE = path.join(SHARED_DATASETS, 'cifar10-jpeg', 'test.tar.gz');

test('CIFAR-10 JPEG test split as an ImageFolder: 10000 images, class order, mean pixel', async (t) => {
  if (!existsSync(ARCHIVE)) {
    t.log(`${ARCHIVE} not present: skipped`);
    t.pass();
    return;
  }
  const dir = await tempDir('patchcert-cifar-jpeg-');
  try {
    execFileSync('tar', ['-xzf', ARCHIVE, '-C', dir]);
    const G = { height: 32, width: 32, channels: 3 };
    const spec = { format: 'imagefolder' as const, path: dir, split: 'test' as const };
    let t0 = performance.now();
    const idx = await indexDataset(spec, G);
    t.log(`indexed (headers checked) in ${(performance.now() - t0).toFixed(0)} ms`);
    t.deepEqual(idx.classNames, CIFAR10_CLASSES);
    t.is(idx.items.length, 10000);
    const perClass = new Array(10).fill(0);
    for (const it of idx.items) perClass[it.label]++;
    t.deepEqual(perClass, new Array(10).fill(1000));
    t.is(path.relative(dir, idx.items[1000]!.source), path.join('test', 'automobile', '0000.jpg'));

    const reader = createImageReader(spec, G);
    t0 = performance.now();
    const sum = [0, 0, 0];
    const chunk = 500;
    for (let s = 0; s < idx.items.length; s += chunk) {
      const px = await reader.readBatch(idx.items.slice(s, s + chunk));
      for (let i = 0; i < px.length; i += 3) {
        sum[0] += px[i]!;
        sum[1] += px[i + 1]!;
        sum[2] += px[i + 2]!;
      }
    }
    const ms = performance.now() - t0;
    t.log(`decoded 10000 32x32 JPEGs in ${ms.toFixed(0)} ms: ${((10000 / ms) * 1000).toFixed(0)} images/s on one thread`);
    await reader.close();
    // The README of the shared copy: mean pixel of the test split (0.4941, 0.4851, 0.4504).
    const mean = sum.map((v) => v / (10000 * 1024));
    t.log(`mean pixel ${mean.map((v) => v.toFixed(4)).join(', ')}`);
    [0.4941, 0.4851, 0.4504].forEach((m, c) => t.true(Math.abs(mean[c]! - m) < 6e-4, `channel ${c}: ${mean[c]} vs ${m}`));
  } finally {
    await removeDir(dir);
  }
});
