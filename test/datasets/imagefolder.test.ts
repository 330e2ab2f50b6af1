import { promises as fsp } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import sharp from 'sharp';
import {
  DatasetError,
  centreCropOffsets,
  createImageReader,
  indexDataset,
  resizedSize,
  sizeFromHeader,
} from '../../worker/datasets/index.js';
import {
  type FixtureImage,
  corruptJpeg,
  knownBytes,
  removeDir,
  rgbImage,
  smoothImage,
  tempDir,
  toUnit,
  truncateFile,
  writeImage,
  writeImageFolder,
} from '../helpers/fixtures-images.js';

const G8 = { height: 8, width: 8, channels: 3 };
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('class order, file order and extensions; PNG and lossless WebP decode exactly, JPEG closely', async (t) => {
  const root = await tempDir();
  try {
    // Code-unit order: 'Zebra' < 'apple' < 'banana'; files likewise ('B.png' < 'a.png').
    const apple = [rgbImage('b.PNG', 'png', 1), rgbImage('B.png', 'png', 2), rgbImage('a.webp', 'webp', 3)];
    const banana = [rgbImage('x.JPEG', 'jpeg', 4), rgbImage('y.jpg', 'jpeg', 5)];
    const zebra = [rgbImage('10.png', 'png', 6), rgbImage('9.png', 'png', 7)];
    await writeImageFolder(root, { banana, apple, Zebra: zebra });
    await fsp.writeFile(path.join(root, 'apple', 'notes.txt'), 'not an image');
    await fsp.writeFile(path.join(root, 'README'), 'not a class');
    // torchvision walks sub-folders of a class too
    await writeImage(path.join(root, 'banana', 'sub', 'a.png'), rgbImage('a.png', 'png', 8));

    const idx = await indexDataset({ format: 'imagefolder', path: root }, G8);
    t.deepEqual(idx.classNames, ['Zebra', 'apple', 'banana']);
    const rel = idx.items.map((i) => path.relative(root, i.source).split(path.sep).join('/'));
    t.deepEqual(rel, ['Zebra/10.png', 'Zebra/9.png', 'apple/B.png', 'apple/a.webp', 'apple/b.PNG', 'banana/x.JPEG', 'banana/y.jpg', 'banana/sub/a.png']);
    t.deepEqual(
      idx.items.map((i) => i.label),
      [0, 0, 1, 1, 1, 2, 2, 2],
    );
    t.deepEqual(
      idx.items.map((i) => i.index),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    t.is(idx.root, root);

    const expected: Record<string, FixtureImage> = {
      'Zebra/10.png': zebra[0]!,
      'Zebra/9.png': zebra[1]!,
      'apple/B.png': apple[1]!,
      'apple/a.webp': apple[2]!,
      'apple/b.PNG': apple[0]!,
      'banana/x.JPEG': banana[0]!,
      'banana/y.jpg': banana[1]!,
    };
    const reader = createImageReader({ format: 'imagefolder', path: root }, G8);
    for (let k = 0; k < 7; k++) {
      const px = await reader.read(idx.items[k]!);
      const want = toUnit(expected[rel[k]!]!.pixels);
      if (expected[rel[k]!]!.kind === 'jpeg') {
        const d = maxAbsDiff(px, want);
        t.true(d < 12 / 255, `${rel[k]} differs by ${d * 255}/255`);
        t.true(d > 0); // really went through a lossy codec
      } else {
        t.deepEqual(px, want, rel[k]);
      }
    }
    const batch = await reader.readBatch(idx.items.slice(0, 3));
    t.deepEqual(batch.subarray(2 * 192), toUnit(apple[1]!.pixels));
    // relative sources resolve against the root
    t.deepEqual(await reader.read({ index: 0, label: 0, source: 'Zebra/10.png' }), toUnit(zebra[0]!.pixels));
    await reader.close();
  } finally {
    await removeDir(root);
  }
});

test('alpha is dropped, greyscale images expand to RGB, and channels 1 gives Pillow luma', async (t) => {
  const root = await tempDir();
  try {
    const rgba = knownBytes(8 * 8 * 4, 11);
    const grey = knownBytes(8 * 8, 12);
    const rgb = knownBytes(8 * 8 * 3, 13);
    await writeImage(path.join(root, 'c', 'rgba.png'), { kind: 'png', height: 8, width: 8, channels: 4, pixels: rgba });
    await writeImage(path.join(root, 'c', 'grey.png'), { kind: 'png', height: 8, width: 8, channels: 1, pixels: grey });
    await writeImage(path.join(root, 'c', 'rgb.png'), { kind: 'png', height: 8, width: 8, channels: 3, pixels: rgb });
    const idx = await indexDataset({ format: 'imagefolder', path: root }, G8);
    t.deepEqual(
      idx.items.map((i) => path.basename(i.source)),
      ['grey.png', 'rgb.png', 'rgba.png'],
    );
    const r3 = createImageReader({ format: 'imagefolder', path: root }, G8);
    const g3 = await r3.read(idx.items[0]!);
    for (let i = 0; i < 64; i++) for (let c = 0; c < 3; c++) t.is(g3[i * 3 + c], Math.fround(grey[i]! / 255));
    const a3 = await r3.read(idx.items[2]!);
    const rgbOfRgba = new Uint8Array(64 * 3);
    for (let i = 0; i < 64; i++) for (let c = 0; c < 3; c++) rgbOfRgba[i * 3 + c] = rgba[i * 4 + c]!;
    t.deepEqual(a3, toUnit(rgbOfRgba));
    await r3.close();

    const G1 = { height: 8, width: 8, channels: 1 };
    const idx1 = await indexDataset({ format: 'imagefolder', path: root }, G1);
    t.not(idx1.manifestSha256, idx.manifestSha256); // channels are part of the manifest
    const r1 = createImageReader({ format: 'imagefolder', path: root }, G1);
    t.deepEqual(await r1.read(idx1.items[0]!), toUnit(grey)); // grey stays exact
    const l = await r1.read(idx1.items[1]!);
    t.is(l.length, 64);
    for (let i = 0; i < 64; i++) {
      const want = (rgb[i * 3]! * 19595 + rgb[i * 3 + 1]! * 38470 + rgb[i * 3 + 2]! * 7471 + 0x8000) >>> 16;
      t.is(l[i], Math.fround(want / 255));
    }
    await r1.close();
  } finally {
    await removeDir(root);
  }
});

test('torchvision resize/centre-crop arithmetic', (t) => {
  t.deepEqual(resizedSize(375, 500, 256), { height: 256, width: 341 }); // int(256*500/375) = 341
  t.deepEqual(resizedSize(500, 333, 256), { height: 384, width: 256 }); // int(256*500/333) = 384
  t.deepEqual(resizedSize(256, 300, 256), { height: 256, width: 300 }); // shorter side already right
  t.deepEqual(centreCropOffsets(256, 341, 224, 224), { top: 16, left: 58 }); // round(58.5) = 58 (half to even)
  t.deepEqual(centreCropOffsets(259, 224, 224, 224), { top: 18, left: 0 }); // round(17.5) = 18
  t.deepEqual(centreCropOffsets(10, 11, 4, 4), { top: 3, left: 4 }); // round(3.5) = 4
});

test('resize + centre crop: geometry, and the crop picks the centre', async (t) => {
  const root = await tempDir();
  try {
    // 12 x 20 landscape image whose centre 12 x 12 square is a distinct colour (no resize needed
    // to check the crop), and a 30 x 18 portrait one to exercise the resize.
    const land = new Uint8Array(12 * 20 * 3).fill(10);
    for (let y = 0; y < 12; y++) for (let x = 4; x < 16; x++) land.set([200, 100, 50], (y * 20 + x) * 3);
    await writeImage(path.join(root, 'a', 'land.png'), { kind: 'png', height: 12, width: 20, channels: 3, pixels: land });
    await writeImage(path.join(root, 'a', 'port.png'), { kind: 'png', height: 30, width: 18, channels: 3, pixels: smoothImage(30, 18, 3, 3) });
    const G12 = { height: 12, width: 12, channels: 3 };

    // crop only: centre 12 x 12 of the landscape image
    const cropSpec = { format: 'imagefolder' as const, path: root, crop: 12 };
    const idxC = await indexDataset(cropSpec, G12);
    const rc = createImageReader(cropSpec, G12);
    const c = await rc.read(idxC.items[0]!);
    t.is(c.length, 12 * 12 * 3);
    for (let i = 0; i < 144; i++) t.deepEqual([...c.subarray(i * 3, i * 3 + 3)], [200, 100, 50].map((v) => Math.fround(v / 255)));
    await rc.close();

    // resize shorter side to 12 (landscape: already 12, untouched) then crop: same as crop only
    const spec = { format: 'imagefolder' as const, path: root, resize: 12, crop: 12 };
    const idx = await indexDataset(spec, G12);
    t.not(idx.manifestSha256, idxC.manifestSha256); // resize is part of the manifest
    const r = createImageReader(spec, G12);
    t.deepEqual(await r.read(idx.items[0]!), c);
    // portrait 30 x 18 -> shorter side 12 -> 20 x 12 -> centre crop rows 4..15
    const p = await r.read(idx.items[1]!);
    t.is(p.length, 12 * 12 * 3);
    const resized = await sharp(Buffer.from(smoothImage(30, 18, 3, 3)), { raw: { width: 18, height: 30, channels: 3 } })
      .resize(12, 20, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: false })
      .raw()
      .toBuffer();
    t.deepEqual(p, toUnit(new Uint8Array(resized.subarray(4 * 12 * 3, 16 * 12 * 3))));
    await r.close();

    // resize without crop crops to the model geometry
    const r2 = createImageReader({ format: 'imagefolder', path: root, resize: 12 }, { height: 10, width: 8, channels: 3 });
    t.is((await r2.read(idx.items[1]!)).length, 10 * 8 * 3);
    await r2.close();

    // a crop that disagrees with the model, or exceeds the resize, is refused up front
    await t.throwsAsync(indexDataset({ format: 'imagefolder', path: root, resize: 16, crop: 14 }, G12), {
      instanceOf: DatasetError,
      message: /crop 14 gives 14x14 images but the model expects 12x12/,
    });
    await t.throwsAsync(indexDataset({ format: 'imagefolder', path: root, resize: 10, crop: 12 }, G12), { message: /crop 12 is larger than resize 10/ });
    // an image smaller than the crop (no resize) is an error naming it
    const small = createImageReader({ format: 'imagefolder', path: root, crop: 16 }, { height: 16, width: 16, channels: 3 });
    await t.throwsAsync(small.read(idx.items[0]!), {
      instanceOf: DatasetError,
      message: new RegExp(`^${esc(idx.items[0]!.source)}: image is 12x20 .*smaller than the 16x16 centre crop`),
    });
    await small.close();
  } finally {
    await removeDir(root);
  }
});

test('a wrong-size image without resize/crop fails indexing and reading, naming the file and both sizes', async (t) => {
  const root = await tempDir();
  try {
    await writeImageFolder(root, { a: [rgbImage('ok.png', 'png', 1)], b: [rgbImage('big.png', 'png', 2, 10, 9)] });
    const big = path.join(root, 'b', 'big.png');
    await t.throwsAsync(indexDataset({ format: 'imagefolder', path: root }, G8), {
      instanceOf: DatasetError,
      message: `${big}: image is 10x9 (HxW) but the model expects 8x8; set resize/crop to rescale images`,
    });
    // a subset that leaves the bad image out indexes fine; the reader still refuses it
    const idx = await indexDataset({ format: 'imagefolder', path: root, limit: 1 }, G8);
    t.is(idx.items.length, 1);
    const r = createImageReader({ format: 'imagefolder', path: root }, G8);
    const e = await t.throwsAsync(r.read({ index: 1, label: 1, source: big }), { instanceOf: DatasetError });
    t.is(e!.source, big);
    t.regex(e!.message, /10x9 .* 8x8/);
    await r.close();
  } finally {
    await removeDir(root);
  }
});

test('corrupt and truncated JPEG/PNG files are errors naming the file with sharp\'s reason', async (t) => {
  const root = await tempDir();
  try {
    const big = (name: string, kind: 'png' | 'jpeg') => ({ ...rgbImage(name, kind, 9, 32, 32) });
    await writeImageFolder(root, { a: [big('trunc.jpg', 'jpeg'), big('bad.jpg', 'jpeg'), big('trunc.png', 'png'), big('junk.png', 'png')] });
    const f = (n: string) => path.join(root, 'a', n);
    const G32 = { height: 32, width: 32, channels: 3 };
    const idx = await indexDataset({ format: 'imagefolder', path: root }, G32);
    await truncateFile(f('trunc.jpg'), -200);
    await corruptJpeg(f('bad.jpg'));
    await truncateFile(f('trunc.png'), -150);
    await fsp.writeFile(f('junk.png'), 'this is not a PNG at all');
    const r = createImageReader({ format: 'imagefolder', path: root }, G32);
    const bySrc = new Map(idx.items.map((i) => [path.basename(i.source), i]));
    for (const [name, reason] of [
      ['trunc.jpg', /premature end/i],
      // libvips sometimes reports only its generic failOn text for this warning (seen in CI)
      ['bad.jpg', /corrupt JPEG data: 7 extraneous bytes|warning treated as error/i],
      ['trunc.png', /libpng|png/i],
      ['junk.png', /unsupported image format/i],
    ] as const) {
      const e = await t.throwsAsync(r.read(bySrc.get(name)!), { instanceOf: DatasetError });
      t.true(e!.message.startsWith(`${f(name)}: cannot decode image: `), e!.message);
      t.regex(e!.message, reason);
      t.is(e!.source, f(name));
    }
    // readBatch rejects naming the first bad file it meets
    await t.throwsAsync(r.readBatch([bySrc.get('junk.png')!]), { message: new RegExp(esc(f('junk.png'))) });
    // a header that cannot be parsed does not fail indexing: that image fails alone, when it is read
    const again = await indexDataset({ format: 'imagefolder', path: root }, G32);
    t.is(again.items.length, 4);
    await fsp.writeFile(f('empty.png'), '');
    t.is((await indexDataset({ format: 'imagefolder', path: root }, G32)).items.length, 5, 'nor does a zero-byte .png');
    // a vanished file is named
    await fsp.rm(f('bad.jpg'));
    await t.throwsAsync(r.read(bySrc.get('bad.jpg')!), { message: `file not found: ${f('bad.jpg')}` });
    await r.close();
    // failOn 'truncated' tolerates the corrupt-but-complete JPEG and still refuses the truncated one
    await writeImage(f('bad2.jpg'), big('bad2.jpg', 'jpeg'));
    await corruptJpeg(f('bad2.jpg'));
    const lenient = createImageReader({ format: 'imagefolder', path: root, failOn: 'truncated' }, G32);
    t.is((await lenient.read({ index: 0, label: 0, source: f('bad2.jpg') })).length, 3072);
    await t.throwsAsync(lenient.read(bySrc.get('trunc.jpg')!), { instanceOf: DatasetError });
    await lenient.close();
  } finally {
    await removeDir(root);
  }
});

test('missing path, a file instead of a folder, and a tree without classes or images', async (t) => {
  const root = await tempDir();
  try {
    const missing = path.join(root, 'missing');
    await t.throwsAsync(indexDataset({ format: 'imagefolder', path: missing }, G8), {
      instanceOf: DatasetError,
      message: `data set path not found: ${missing}`,
    });
    await fsp.writeFile(path.join(root, 'file.png'), 'x');
    await t.throwsAsync(indexDataset({ format: 'imagefolder', path: path.join(root, 'file.png') }, G8), { message: /must be a folder/ });
    await fsp.mkdir(path.join(root, 'empty'));
    await t.throwsAsync(indexDataset({ format: 'imagefolder', path: path.join(root, 'empty') }, G8), { message: /has no class sub-folders/ });
    await fsp.mkdir(path.join(root, 'noimg', 'cls'), { recursive: true });
    await t.throwsAsync(indexDataset({ format: 'imagefolder', path: path.join(root, 'noimg') }, G8), { message: /has no images/ });
    // split picks root/<split> when it exists
    await writeImageFolder(path.join(root, 'ds', 'test'), { k: [rgbImage('1.png', 'png', 1)] });
    const idx = await indexDataset({ format: 'imagefolder', path: path.join(root, 'ds'), split: 'test' }, G8);
    t.deepEqual(idx.classNames, ['k']);
    await t.throwsAsync(indexDataset({ format: 'imagefolder', path: root }, { height: 0, width: 8, channels: 3 }), { message: /height must be a positive integer/ });
  } finally {
    await removeDir(root);
  }
});

test('header sizes (PNG, baseline/progressive JPEG, lossy/lossless/extended WebP) agree with sharp', async (t) => {
  const px3 = smoothImage(23, 37, 3, 1);
  const px4 = knownBytes(23 * 37 * 4, 2);
  const raw = (p: Uint8Array, channels: 3 | 4) => sharp(Buffer.from(p), { raw: { width: 37, height: 23, channels } });
  const cases: [string, Buffer][] = [
    ['png', await raw(px3, 3).png().toBuffer()],
    ['png rgba', await raw(px4, 4).png().toBuffer()],
    ['jpeg', await raw(px3, 3).jpeg().toBuffer()],
    ['jpeg progressive', await raw(px3, 3).jpeg({ progressive: true }).toBuffer()],
    ['jpeg with exif', await raw(px3, 3).jpeg().withMetadata({ orientation: 6 }).toBuffer()],
    ['webp lossy', await raw(px3, 3).webp().toBuffer()],
    ['webp lossless', await raw(px3, 3).webp({ lossless: true }).toBuffer()],
    ['webp alpha', await raw(px4, 4).webp().toBuffer()],
  ];
  for (const [name, buf] of cases) {
    const meta = await sharp(buf).metadata();
    t.deepEqual(sizeFromHeader(buf), { width: meta.width, height: meta.height }, name);
    t.deepEqual(sizeFromHeader(buf), { width: 37, height: 23 }, name);
  }
  t.is(sizeFromHeader(Buffer.from('not an image')), null);
  t.is(sizeFromHeader(cases[2]![1].subarray(0, 10)), null);
});
