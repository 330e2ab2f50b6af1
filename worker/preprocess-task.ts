// Piscina task: decode the images of one inference tile and build its encoded ablation batch.
// Runs in a worker thread, so decoding and encoding overlap with inference on the main thread.
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { type EncodeSpec, encodeAblation, encodedSize } from '../core/index.js';
import { createImageReader } from './datasets/index.js';
import type { DatasetItem, DatasetSpec } from './types.js';

export interface PreprocessTask {
  dataset: DatasetSpec;
  encode: EncodeSpec;
  items: DatasetItem[];
  ablStart: number;
  ablEnd: number;
  /** only decode: `input` is then items.length x H x W x C images (a GPU backend builds the ablations) */
  decodeOnly?: boolean;
}

export interface PreprocessResult {
  /** items.length x (ablEnd - ablStart) encoded inputs, image-major; a failed image's rows are zero */
  input: Float32Array;
  /** index into items of each image that could not be read, with the reason */
  failed: { item: number; error: string }[];
  ms: number;
}

type Reader = Awaited<ReturnType<typeof createImageReader>>;
const readers = new Map<string, Promise<Reader>>();

// Small per-thread cache: a unit that spans several ablation tiles decodes each image once.
const decoded = new Map<string, Float32Array>();
const DECODED_CACHE = 256;

function readerFor(task: PreprocessTask): Promise<Reader> {
  const geom = task.encode.geom;
  const expect = { height: geom.height, width: geom.width, channels: task.encode.channels };
  const key = JSON.stringify([task.dataset, expect]);
  let r = readers.get(key);
  if (!r) {
    r = Promise.resolve(createImageReader(task.dataset, expect));
    readers.set(key, r);
    r.catch(() => readers.delete(key));
  }
  return r;
}

async function decode(reader: Reader, task: PreprocessTask, item: DatasetItem): Promise<Float32Array> {
  const key = `${task.dataset.path}\u0000${item.index}\u0000${task.dataset.resize ?? ''}\u0000${task.dataset.crop ?? ''}`;
  const hit = decoded.get(key);
  if (hit) return hit;
  const px = await reader.read(item);
  if (decoded.size >= DECODED_CACHE) decoded.delete(decoded.keys().next().value!);
  decoded.set(key, px);
  return px;
}

export default async function preprocess(task: PreprocessTask): Promise<PreprocessResult> {
  const t0 = performance.now();
  const span = task.decodeOnly ? 1 : task.ablEnd - task.ablStart;
  const size = task.decodeOnly ? task.encode.geom.height * task.encode.geom.width * task.encode.channels : encodedSize(task.encode);
  const input = new Float32Array(task.items.length * span * size);
  const failed: { item: number; error: string }[] = [];
  const reader = await readerFor(task);
  // Decode the tile's images concurrently (sharp works on libuv's pool); each failure is kept
  // apart so one corrupt image costs only itself.
  const images = await Promise.allSettled(task.items.map((item) => decode(reader, task, item)));
  images.forEach((res, i) => {
    if (res.status === 'rejected') {
      failed.push({ item: i, error: res.reason instanceof Error ? res.reason.message : String(res.reason) });
      return;
    }
    if (task.decodeOnly) {
      input.set(res.value, i * size);
      return;
    }
    for (let k = task.ablStart; k < task.ablEnd; k++) {
      encodeAblation(task.encode, res.value, k, input, (i * span + (k - task.ablStart)) * size);
    }
  });
  const result: PreprocessResult = { input, failed, ms: performance.now() - t0 };
  // Hand the batch's buffer over to the main thread instead of copying it.
  return move({ [transferableSymbol]: [input.buffer], [valueSymbol]: result } as never) as unknown as PreprocessResult;
}
