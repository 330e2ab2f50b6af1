// MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, …): unsigned-byte images
// (magic 0x00000803, dims n x rows x cols, big-endian) and labels (magic 0x00000801, dim n),
// gzipped or not (detected by the gzip magic bytes, not by the name).
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { DatasetError, type DatasetItem, type DatasetSpec } from '../types.js';
import {
  type Geometry,
  type ImageReader,
  type Listing,
  acquireFile,
  checkBinaryGeometry,
  readWhole,
  rejectImageOptions,
  releaseFile,
  statDatasetPath,
  statOrNull,
  u8ToUnit,
} from './common.js';

const gunzipAsync = promisify(gunzip);

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

/** Class names for an IDX data set: Fashion-MNIST's when the path mentions "fashion", else digits. */
export function idxClassNames(p: string): string[] {
  return /fashion/i.test(path.resolve(p)) ? [...FASHION_MNIST_CLASSES] : [...MNIST_CLASSES];
}

async function isFile(p: string): Promise<boolean> {
  return (await statOrNull(p))?.isFile() ?? false;
}

async function firstExisting(candidates: string[]): Promise<string | null> {
  for (const c of candidates) if (await isFile(c)) return c;
  return null;
}

function variants(dir: string, prefix: string, kind: 'images' | 'labels'): string[] {
  const dims = kind === 'images' ? 'idx3' : 'idx1';
  const out: string[] = [];
  for (const sep of ['-', '.']) {
    const base = path.join(dir, `${prefix}-${kind}${sep}${dims}-ubyte`);
    out.push(base, `${base}.gz`);
  }
  return out;
}

/** The images and labels files a spec names. */
export async function resolveIdxFiles(spec: DatasetSpec): Promise<{ root: string; images: string; labels: string }> {
  const st = await statDatasetPath(spec.path);
  if (st.isDirectory()) {
    const prefix = spec.split === 'train' ? 'train' : 't10k';
    const images = await firstExisting(variants(spec.path, prefix, 'images'));
    const labels = await firstExisting(variants(spec.path, prefix, 'labels'));
    const expected = path.join(spec.path, `${prefix}-images-idx3-ubyte[.gz]`);
    if (!images) {
      throw new DatasetError(`IDX images file not found: ${expected} (split '${spec.split ?? 'test'}')`, expected);
    }
    if (!labels) {
      const want = path.join(spec.path, `${prefix}-labels-idx1-ubyte[.gz]`);
      throw new DatasetError(`IDX labels file not found: ${want} (for ${images})`, want);
    }
    return { root: spec.path, images, labels };
  }
  const images = spec.path;
  const dir = path.dirname(images);
  const base = path.basename(images).replace(/\.gz$/i, '');
  const m = /^(.*)images([-.])idx3(.*)$/.exec(base);
  if (!m) {
    throw new DatasetError(
      `${images}: cannot find the labels file beside an IDX images file whose name has no "images-idx3" in it; pass the folder instead`,
      images,
    );
  }
  const labelBase = `${m[1]}labels${m[2]}idx1${m[3]}`;
  const cands = [path.join(dir, labelBase), path.join(dir, `${labelBase}.gz`)];
  const labels = await firstExisting(cands);
  if (!labels) throw new DatasetError(`IDX labels file not found beside ${images}: tried ${cands.join(', ')}`, cands[0]!);
  return { root: dir, images, labels };
}

/** Reads a file, gunzipping when it starts with the gzip magic. */
export async function loadMaybeGzip(file: string): Promise<Uint8Array> {
  const raw = await readWhole(file);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return await gunzipAsync(raw);
    } catch (err) {
      throw new DatasetError(`${file}: corrupt or truncated gzip data: ${(err as Error).message}`, file);
    }
  }
  return raw;
}

export interface IdxImagesHeader {
  count: number;
  rows: number;
  cols: number;
  /** byte offset of the first image */
  dataStart: number;
}

const hex = (v: number) => `0x${v.toString(16).padStart(8, '0')}`;

export function parseIdxImages(file: string, d: Uint8Array): IdxImagesHeader {
  if (d.length < 16) throw new DatasetError(`${file}: ${d.length} bytes is too short for an IDX images header (16 bytes)`, file);
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const magic = v.getUint32(0, false);
  if (magic !== IDX_IMAGES_MAGIC) {
    const hint = magic === IDX_LABELS_MAGIC ? ' (this is a labels file)' : '';
    throw new DatasetError(
      `${file}: bad IDX magic ${hex(magic)}, expected ${hex(IDX_IMAGES_MAGIC)} (unsigned-byte images with 3 dimensions)${hint}`,
      file,
    );
  }
  const count = v.getUint32(4, false);
  const rows = v.getUint32(8, false);
  const cols = v.getUint32(12, false);
  if (rows === 0 || cols === 0) throw new DatasetError(`${file}: IDX images have zero size (${rows}x${cols})`, file);
  const want = 16 + count * rows * cols;
  if (d.length !== want) {
    throw new DatasetError(
      `${file}: ${d.length} bytes but the header (${count} images of ${rows}x${cols}) needs ${want}` +
        (d.length < want ? ' (truncated)' : ' (trailing bytes)'),
      file,
    );
  }
  return { count, rows, cols, dataStart: 16 };
}

export function parseIdxLabels(file: string, d: Uint8Array): { count: number; dataStart: number } {
  if (d.length < 8) throw new DatasetError(`${file}: ${d.length} bytes is too short for an IDX labels header (8 bytes)`, file);
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const magic = v.getUint32(0, false);
  if (magic !== IDX_LABELS_MAGIC) {
    const hint = magic === IDX_IMAGES_MAGIC ? ' (this is an images file)' : '';
    throw new DatasetError(`${file}: bad IDX magic ${hex(magic)}, expected ${hex(IDX_LABELS_MAGIC)} (unsigned-byte labels, 1 dimension)${hint}`, file);
  }
  const count = v.getUint32(4, false);
  if (d.length !== 8 + count) {
    throw new DatasetError(
      `${file}: ${d.length} bytes but the header (${count} labels) needs ${8 + count}` + (d.length < 8 + count ? ' (truncated)' : ' (trailing bytes)'),
      file,
    );
  }
  return { count, dataStart: 8 };
}

interface IdxData {
  root: string;
  imagesFile: string;
  labelsFile: string;
  images: Uint8Array;
  header: IdxImagesHeader;
  labels: Uint8Array;
  labelStart: number;
  classNames: string[];
}

function checkPair(f: { imagesFile: string; labelsFile: string }, header: IdxImagesHeader, labelCount: number, expect: Geometry): void {
  if (labelCount !== header.count) {
    throw new DatasetError(
      `${f.imagesFile} holds ${header.count} images but ${f.labelsFile} holds ${labelCount} labels: the counts must match`,
      f.imagesFile,
    );
  }
  checkBinaryGeometry('IDX', { height: header.rows, width: header.cols, channels: 1 }, expect, f.imagesFile);
}

export async function listIdx(spec: DatasetSpec, expect: Geometry): Promise<Listing> {
  rejectImageOptions(spec);
  const files = await resolveIdxFiles(spec);
  const images = await loadMaybeGzip(files.images);
  const header = parseIdxImages(files.images, images);
  const labels = await loadMaybeGzip(files.labels);
  const lh = parseIdxLabels(files.labels, labels);
  checkPair({ imagesFile: files.images, labelsFile: files.labels }, header, lh.count, expect);
  const classNames = idxClassNames(spec.path);
  const items: DatasetItem[] = new Array(header.count);
  for (let i = 0; i < header.count; i++) {
    const label = labels[lh.dataStart + i]!;
    if (label >= classNames.length) {
      throw new DatasetError(`${files.labels}#${i}: label ${label} is out of range for ${classNames.length} classes`, `${files.labels}#${i}`);
    }
    items[i] = { index: i, label, source: `${files.images}#${i}` };
  }
  return { root: files.root, classNames, items };
}

export function createIdxReader(spec: DatasetSpec, expect: Geometry): ImageReader {
  let dataP: Promise<IdxData> | null = null;
  const keys: string[] = [];
  let closed = false;
  const size = expect.height * expect.width;

  const load = (): Promise<IdxData> => {
    if (!dataP) {
      dataP = (async () => {
        rejectImageOptions(spec);
        const files = await resolveIdxFiles(spec);
        const img = await acquireFile(files.images, loadMaybeGzip);
        keys.push(img.key);
        const header = parseIdxImages(files.images, img.data);
        const lab = await acquireFile(files.labels, loadMaybeGzip);
        keys.push(lab.key);
        const lh = parseIdxLabels(files.labels, lab.data);
        checkPair({ imagesFile: files.images, labelsFile: files.labels }, header, lh.count, expect);
        return {
          root: files.root,
          imagesFile: files.images,
          labelsFile: files.labels,
          images: img.data,
          header,
          labels: lab.data,
          labelStart: lh.dataStart,
          classNames: idxClassNames(spec.path),
        };
      })();
      dataP.catch(() => {
        dataP = null;
        for (const k of keys.splice(0)) releaseFile(k);
      });
    }
    return dataP;
  };

  const readInto = async (item: DatasetItem, out: Float32Array, outOffset: number): Promise<void> => {
    if (closed) throw new DatasetError(`reader for ${spec.path} is closed`, item.source);
    const d = await load();
    const n = d.header.count;
    if (!Number.isInteger(item.index) || item.index < 0 || item.index >= n) {
      throw new DatasetError(`image index ${item.index} is out of range: ${d.imagesFile} has ${n} images`, item.source);
    }
    const label = d.labels[d.labelStart + item.index]!;
    if (label !== item.label) {
      throw new DatasetError(
        `${d.imagesFile}#${item.index}: label in ${d.labelsFile} is ${label} but the item says ${item.label} (index built from another data set?)`,
        item.source,
      );
    }
    u8ToUnit(d.images, d.header.dataStart + item.index * size, size, out, outOffset);
  };

  return {
    height: expect.height,
    width: expect.width,
    channels: 1,
    readInto,
    async read(item) {
      const out = new Float32Array(size);
      await readInto(item, out, 0);
      return out;
    },
    async readBatch(items) {
      const out = new Float32Array(items.length * size);
      for (let i = 0; i < items.length; i++) await readInto(items[i]!, out, i * size);
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        await dataP;
      } catch {
        // nothing held
      }
      for (const k of keys.splice(0)) releaseFile(k);
    },
  };
}
