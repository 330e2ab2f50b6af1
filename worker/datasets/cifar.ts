// CIFAR-10 official binary format (cifar-10-batches-bin): records of 1 label byte + 3072 pixel
// bytes, channel-planar (1024 R, 1024 G, 1024 B, each row-major 32x32), converted to HWC floats.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { DatasetError, type DatasetItem, type DatasetSpec } from '../types.js';
import {
  type Geometry,
  type ImageReader,
  type Listing,
  U8_TO_UNIT,
  acquireFile,
  checkBinaryGeometry,
  readWhole,
  rejectImageOptions,
  releaseFile,
  statDatasetPath,
  statOrNull,
} from './common.js';

export const CIFAR_SIDE = 32;
export const CIFAR_PIXELS = CIFAR_SIDE * CIFAR_SIDE;
export const CIFAR_RECORD = 1 + 3 * CIFAR_PIXELS; // 3073
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const CIFAR_GEOM: Geometry = { height: CIFAR_SIDE, width: CIFAR_SIDE, channels: 3 };

export const CIFAR_TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];
export const CIFAR_TEST_FILES = ['test_batch.bin'];

interface CifarLayout {
  root: string;
  files: string[];
  /** records per file */
  counts: number[];
  /** first data set index of each file */
  starts: number[];
  total: number;
}

async function isFile(p: string): Promise<boolean> {
  return (await statOrNull(p))?.isFile() ?? false;
}

/** The batch files a spec names, in data set order. */
export async function resolveCifarFiles(spec: DatasetSpec): Promise<{ root: string; files: string[] }> {
  const st = await statDatasetPath(spec.path);
  if (st.isFile()) return { root: path.dirname(spec.path), files: [spec.path] };
  let dir = spec.path;
  const names = spec.split === 'train' ? CIFAR_TRAIN_FILES : CIFAR_TEST_FILES;
  // Accept the folder that holds cifar-10-batches-bin (where the official archive unpacks).
  if (!(await isFile(path.join(dir, names[0]!)))) {
    const inner = path.join(dir, 'cifar-10-batches-bin');
    if ((await statOrNull(inner))?.isDirectory()) dir = inner;
  }
  const files = names.map((n) => path.join(dir, n));
  for (const f of files) {
    if (!(await isFile(f))) {
      throw new DatasetError(
        `CIFAR-10 batch file not found: ${f} (split '${spec.split ?? 'test'}' needs ${names.join(', ')} in a cifar-10-batches-bin folder)`,
        f,
      );
    }
  }
  return { root: dir, files };
}

function checkSize(file: string, size: number): number {
  if (size === 0 || size % CIFAR_RECORD !== 0) {
    throw new DatasetError(
      `${file}: size ${size} bytes is not a positive multiple of the CIFAR-10 record size ${CIFAR_RECORD} ` +
        `(truncated or not a CIFAR-10 binary batch; ${Math.floor(size / CIFAR_RECORD)} whole records + ${size % CIFAR_RECORD} bytes)`,
      file,
    );
  }
  return size / CIFAR_RECORD;
}

async function layoutOf(spec: DatasetSpec): Promise<CifarLayout> {
  const { root, files } = await resolveCifarFiles(spec);
  const counts: number[] = [];
  const starts: number[] = [];
  let total = 0;
  for (const f of files) {
    const st = await fsp.stat(f);
    const n = checkSize(f, st.size);
    starts.push(total);
    counts.push(n);
    total += n;
  }
  return { root, files, counts, starts, total };
}

/** Class names from batches.meta.txt beside the batches when present, else CIFAR-10's ten. */
export async function cifarClassNames(dir: string): Promise<string[]> {
  const meta = path.join(dir, 'batches.meta.txt');
  let text: string;
  try {
    text = await fsp.readFile(meta, 'utf8');
  } catch {
    return [...CIFAR10_CLASSES];
  }
  const names = text
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new DatasetError(`${meta}: no class names in the file`, meta);
  return names;
}

export async function listCifar(spec: DatasetSpec, expect: Geometry): Promise<Listing> {
  rejectImageOptions(spec);
  const layout = await layoutOf(spec);
  checkBinaryGeometry('CIFAR-10', CIFAR_GEOM, expect, layout.files.length === 1 ? layout.files[0]! : layout.root);
  const classNames = await cifarClassNames(path.dirname(layout.files[0]!));
  const items: DatasetItem[] = [];
  for (let k = 0; k < layout.files.length; k++) {
    const file = layout.files[k]!;
    const buf = await readWhole(file);
    const n = checkSize(file, buf.length);
    for (let r = 0; r < n; r++) {
      const label = buf[r * CIFAR_RECORD]!;
      if (label >= classNames.length) {
        throw new DatasetError(`${file}#${r}: label ${label} is out of range for ${classNames.length} classes`, `${file}#${r}`);
      }
      items.push({ index: layout.starts[k]! + r, label, source: `${file}#${r}` });
    }
  }
  return { root: layout.root, classNames, items };
}

/** Planar CHW record bytes (after the label byte) -> HWC floats. */
export function cifarRecordToHwc(data: Uint8Array, recordStart: number, out: Float32Array, outOffset: number): void {
  const lut = U8_TO_UNIT;
  const p = recordStart + 1;
  for (let i = 0; i < CIFAR_PIXELS; i++) {
    const o = outOffset + 3 * i;
    out[o] = lut[data[p + i]!]!;
    out[o + 1] = lut[data[p + CIFAR_PIXELS + i]!]!;
    out[o + 2] = lut[data[p + 2 * CIFAR_PIXELS + i]!]!;
  }
}

export function createCifarReader(spec: DatasetSpec, expect: Geometry): ImageReader {
  let layoutP: Promise<CifarLayout> | null = null;
  const held = new Map<number, Promise<{ key: string; data: Uint8Array }>>();
  let closed = false;
  const size = CIFAR_PIXELS * 3;

  const layout = (): Promise<CifarLayout> => {
    if (!layoutP) {
      layoutP = (async () => {
        rejectImageOptions(spec);
        const l = await layoutOf(spec);
        checkBinaryGeometry('CIFAR-10', CIFAR_GEOM, expect, l.files.length === 1 ? l.files[0]! : l.root);
        return l;
      })();
      layoutP.catch(() => (layoutP = null));
    }
    return layoutP;
  };

  const fileData = (l: CifarLayout, k: number): Promise<{ key: string; data: Uint8Array }> => {
    let p = held.get(k);
    if (!p) {
      const file = l.files[k]!;
      p = acquireFile(file, async (f) => {
        const buf = await readWhole(f);
        checkSize(f, buf.length);
        return buf;
      });
      held.set(k, p);
      p.catch(() => held.delete(k));
    }
    return p;
  };

  const readInto = async (item: DatasetItem, out: Float32Array, outOffset: number): Promise<void> => {
    if (closed) throw new DatasetError(`reader for ${spec.path} is closed`, item.source);
    const l = await layout();
    if (!Number.isInteger(item.index) || item.index < 0 || item.index >= l.total) {
      throw new DatasetError(`image index ${item.index} is out of range: ${spec.path} has ${l.total} images`, item.source);
    }
    let k = l.files.length - 1;
    while (l.starts[k]! > item.index) k--;
    const r = item.index - l.starts[k]!;
    const { data } = await fileData(l, k);
    const start = r * CIFAR_RECORD;
    if (start + CIFAR_RECORD > data.length) {
      throw new DatasetError(`${l.files[k]}#${r}: record beyond the end of the file (changed since indexing?)`, item.source);
    }
    if (data[start] !== item.label) {
      throw new DatasetError(
        `${l.files[k]}#${r}: label in the file is ${data[start]} but the item says ${item.label} (index built from another data set?)`,
        item.source,
      );
    }
    cifarRecordToHwc(data, start, out, outOffset);
  };

  return {
    height: CIFAR_SIDE,
    width: CIFAR_SIDE,
    channels: 3,
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
      const all = [...held.values()];
      held.clear();
      for (const p of all) {
        try {
          releaseFile((await p).key);
        } catch {
          // a failed load holds nothing
        }
      }
    },
  };
}
