import path from 'node:path';
import test from 'ava';
import { Piscina } from 'piscina';
import { createImageReader, indexDataset } from '../../worker/datasets/index.js';
import type { DatasetSpec } from '../../worker/types.js';
import { cifarRecords, idxSet, removeDir, rgbImage, tempDir, truncateFile, writeCifarFolder, writeIdx, writeImageFolder } from '../helpers/fixtures-images.js';

test('readers work inside piscina worker threads and match the main thread', async (t) => {
  const dir = await tempDir();
  const pool = new Piscina({ filename: new URL('./reader-task.js', import.meta.url).href, minThreads: 2, maxThreads: 2 });
  try {
    await writeCifarFolder(path.join(dir, 'cifar'), { test: cifarRecords(6, 1) });
    await writeIdx(path.join(dir, 'idx'), idxSet(6, 4, 4, 2), { gzip: true });
    await writeImageFolder(path.join(dir, 'folder'), {
      a: [rgbImage('1.png', 'png', 1), rgbImage('2.jpg', 'jpeg', 2)],
      b: [rgbImage('3.webp', 'webp', 3), rgbImage('4.png', 'png', 4)],
    });
    const cases: [DatasetSpec, { height: number; width: number; channels: number }][] = [
      [{ format: 'cifar10-bin', path: path.join(dir, 'cifar') }, { height: 32, width: 32, channels: 3 }],
      [{ format: 'idx', path: path.join(dir, 'idx') }, { height: 4, width: 4, channels: 1 }],
      [{ format: 'imagefolder', path: path.join(dir, 'folder') }, { height: 8, width: 8, channels: 3 }],
    ];
    for (const [spec, expect] of cases) {
      const idx = await indexDataset(spec, expect);
      const local = createImageReader(spec, expect);
      const want = await local.readBatch(idx.items);
      await local.close();
      // several tasks per data set, spread over both threads
      const halves = [idx.items.slice(0, 3), idx.items.slice(3), idx.items.slice(1, 5), idx.items];
      const results = await Promise.all(halves.map((items) => pool.run({ spec, expect, items })));
      const size = expect.height * expect.width * expect.channels;
      results.forEach((res: { pixels: Float32Array; error?: string }, k) => {
        t.is(res.error, undefined);
        const first = idx.items.indexOf(halves[k]![0]!);
        t.deepEqual(res.pixels, want.subarray(first * size, (first + halves[k]!.length) * size), `${spec.format} task ${k}`);
      });
    }
    // errors cross the thread boundary with the file named
    await truncateFile(path.join(dir, 'folder', 'a', '1.png'), 40);
    const spec = cases[2]![0];
    const idx = { items: [{ index: 0, label: 0, source: path.join(dir, 'folder', 'a', '1.png') }] };
    const res = (await pool.run({ spec, expect: cases[2]![1], items: idx.items })) as { error?: string };
    t.regex(res.error ?? '', new RegExp(`^DatasetError: ${path.join(dir, 'folder', 'a', '1.png').replace(/[.]/g, '\\.')}: cannot decode image`));
  } finally {
    await pool.destroy();
    await removeDir(dir);
  }
});
