// Generators of small data set fixtures with known pixels: CIFAR-10 binary batches, MNIST-format
// IDX files (plain and gzipped), ImageFolder trees of PNG/JPEG/WebP made with sharp, and broken
// variants of each. Everything is written under a fresh fs.mkdtemp folder in os.tmpdir().
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';

export async function tempDir(prefix = 'patchcert-ds-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
}

/** Deterministic pseudo-random bytes (xorshift32) so fixtures are the same on every run. */
export function knownBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A smooth H x W x C image (JPEG-friendly: lossy coding stays close to it). */
export function smoothImage(height: number, width: number, channels: number, seed: number): Uint8Array {
  const out = new Uint8Array(height * width * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        const v = 40 + ((seed * 37 + c * 61) % 100) + Math.round(60 * Math.sin((x + seed) / 7 + c) * Math.cos((y - seed) / 9));
        out[(y * width + x) * channels + c] = Math.max(0, Math.min(255, v));
      }
    }
  }
  return out;
}

/** uint8 -> the float32 values every reader must produce. */
export function toUnit(px: Uint8Array): Float32Array {
  const out = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) out[i] = Math.fround(px[i]! / 255);
  return out;
}

// ---------------------------------------------------------------- CIFAR-10 binary

export interface CifarRecord {
  label: number;
  /** 32 x 32 x 3 HWC bytes */
  hwc: Uint8Array;
}

export function cifarRecords(n: number, seed: number): CifarRecord[] {
  return Array.from({ length: n }, (_, i) => ({ label: (seed + i * 3) % 10, hwc: knownBytes(3072, seed * 1000 + i + 1) }));
}

/** One batch file: per record 1 label byte + R plane + G plane + B plane. */
export function cifarBatchBytes(records: readonly CifarRecord[]): Buffer {
  const buf = Buffer.alloc(records.length * 3073);
  records.forEach((r, k) => {
    const o = k * 3073;
    buf[o] = r.label;
    for (let i = 0; i < 1024; i++) for (let c = 0; c < 3; c++) buf[o + 1 + c * 1024 + i] = r.hwc[i * 3 + c]!;
  });
  return buf;
}

export async function writeCifarBatch(file: string, records: readonly CifarRecord[]): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, cifarBatchBytes(records));
}

/**
 * A cifar-10-batches-bin folder: test_batch.bin (and data_batch_1..5.bin when `train` is given),
 * plus batches.meta.txt when `meta` is given.
 */
export async function writeCifarFolder(
  dir: string,
  opts: { test: readonly CifarRecord[]; train?: readonly (readonly CifarRecord[])[]; meta?: readonly string[] },
): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  await writeCifarBatch(path.join(dir, 'test_batch.bin'), opts.test);
  if (opts.train) {
    if (opts.train.length !== 5) throw new Error('CIFAR-10 has 5 training batches');
    for (let b = 0; b < 5; b++) await writeCifarBatch(path.join(dir, `data_batch_${b + 1}.bin`), opts.train[b]!);
  }
  if (opts.meta) await fsp.writeFile(path.join(dir, 'batches.meta.txt'), opts.meta.join('\n') + '\n\n');
  return dir;
}

// ---------------------------------------------------------------- IDX

export interface IdxSet {
  rows: number;
  cols: number;
  /** rows x cols bytes each */
  images: Uint8Array[];
  labels: number[];
}

export function idxSet(n: number, rows: number, cols: number, seed: number): IdxSet {
  return {
    rows,
    cols,
    images: Array.from({ length: n }, (_, i) => knownBytes(rows * cols, seed * 1000 + i + 7)),
    labels: Array.from({ length: n }, (_, i) => (seed + i * 7) % 10),
  };
}

export function idxImagesBytes(s: IdxSet, magic = 0x00000803, count = s.images.length): Buffer {
  const buf = Buffer.alloc(16 + s.images.length * s.rows * s.cols);
  buf.writeUInt32BE(magic, 0);
  buf.writeUInt32BE(count, 4);
  buf.writeUInt32BE(s.rows, 8);
  buf.writeUInt32BE(s.cols, 12);
  s.images.forEach((im, i) => buf.set(im, 16 + i * s.rows * s.cols));
  return buf;
}

export function idxLabelsBytes(labels: readonly number[], magic = 0x00000801): Buffer {
  const buf = Buffer.alloc(8 + labels.length);
  buf.writeUInt32BE(magic, 0);
  buf.writeUInt32BE(labels.length, 4);
  labels.forEach((l, i) => (buf[8 + i] = l));
  return buf;
}

/**
 * Writes <prefix>-images-idx3-ubyte[.gz] and <prefix>-labels-idx1-ubyte[.gz] into dir; returns
 * the two paths. `imagesMagic` / `labels` override the header magic / label list (broken variants).
 */
export async function writeIdx(
  dir: string,
  s: IdxSet,
  opts: { prefix?: 't10k' | 'train'; gzip?: boolean; imagesMagic?: number; labels?: readonly number[] } = {},
): Promise<{ images: string; labels: string }> {
  await fsp.mkdir(dir, { recursive: true });
  const prefix = opts.prefix ?? 't10k';
  const gz = opts.gzip ? '.gz' : '';
  const images = path.join(dir, `${prefix}-images-idx3-ubyte${gz}`);
  const labels = path.join(dir, `${prefix}-labels-idx1-ubyte${gz}`);
  const ib = idxImagesBytes(s, opts.imagesMagic);
  const lb = idxLabelsBytes(opts.labels ?? s.labels);
  await fsp.writeFile(images, opts.gzip ? gzipSync(ib) : ib);
  await fsp.writeFile(labels, opts.gzip ? gzipSync(lb) : lb);
  return { images, labels };
}

// ---------------------------------------------------------------- images

export type ImageKind = 'png' | 'jpeg' | 'webp';

export interface FixtureImage {
  /** file name inside its class folder (extension decides nothing: `kind` does) */
  name: string;
  kind: ImageKind;
  height: number;
  width: number;
  /** 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) */
  channels: 1 | 2 | 3 | 4;
  pixels: Uint8Array;
}

/** Encodes raw HWC pixels with sharp (JPEG quality 95 without chroma subsampling, lossless WebP). */
export async function encodeImage(img: Omit<FixtureImage, 'name'>): Promise<Buffer> {
  const s = sharp(Buffer.from(img.pixels), { raw: { width: img.width, height: img.height, channels: img.channels } });
  switch (img.kind) {
    case 'png':
      return s.png().toBuffer();
    case 'jpeg':
      return s.jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
    case 'webp':
      return s.webp({ lossless: true }).toBuffer();
  }
}

export async function writeImage(file: string, img: Omit<FixtureImage, 'name'>): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, await encodeImage(img));
}

/** Writes root/<class>/<name> for every class and image; returns the root. */
export async function writeImageFolder(root: string, classes: Record<string, readonly FixtureImage[]>): Promise<string> {
  for (const [cls, images] of Object.entries(classes)) {
    await fsp.mkdir(path.join(root, cls), { recursive: true });
    for (const im of images) await writeImage(path.join(root, cls, im.name), im);
  }
  return root;
}

export function rgbImage(name: string, kind: ImageKind, seed: number, height = 8, width = 8): FixtureImage {
  const pixels = kind === 'jpeg' ? smoothImage(height, width, 3, seed) : knownBytes(height * width * 3, seed);
  return { name, kind, height, width, channels: 3, pixels };
}

// ---------------------------------------------------------------- broken files

/** Keeps only the first `keep` bytes (negative: drops that many from the end). */
export async function truncateFile(file: string, keep: number): Promise<void> {
  const buf = await fsp.readFile(file);
  await fsp.writeFile(file, buf.subarray(0, keep >= 0 ? keep : buf.length + keep));
}

/** Overwrites bytes [from, to) with `value`. */
export async function corruptFile(file: string, from: number, to: number, value = 0x55): Promise<void> {
  const buf = await fsp.readFile(file);
  buf.fill(value, from, Math.min(to, buf.length));
  await fsp.writeFile(file, buf);
}

/**
 * Inserts junk bytes before a JPEG's start-of-scan marker: libjpeg then warns "Corrupt JPEG data:
 * N extraneous bytes before marker 0xda" (a damaged but complete file).
 */
export async function corruptJpeg(file: string, junk = 7): Promise<void> {
  const buf = await fsp.readFile(file);
  const sos = buf.indexOf(Buffer.from([0xff, 0xda]));
  if (sos < 0) throw new Error(`${file}: no JPEG start-of-scan marker`);
  await fsp.writeFile(file, Buffer.concat([buf.subarray(0, sos), Buffer.alloc(junk, 0x42), buf.subarray(sos)]));
}
