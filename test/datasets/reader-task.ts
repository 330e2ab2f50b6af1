// Piscina task used by threads.test.ts: reads items with a per-thread reader, as the worker's
// preprocess task does.
import type { DatasetItem, DatasetSpec } from '../../worker/types.js';
import { type ImageReader, createImageReader } from '../../worker/datasets/index.js';

const readers = new Map<string, ImageReader>();

export default async function read(task: {
  spec: DatasetSpec;
  expect: { height: number; width: number; channels: number };
  items: DatasetItem[];
}): Promise<{ pixels: Float32Array; error?: string }> {
  const key = JSON.stringify([task.spec, task.expect]);
  let r = readers.get(key);
  if (!r) readers.set(key, (r = createImageReader(task.spec, task.expect)));
  try {
    return { pixels: await r.readBatch(task.items) };
  } catch (err) {
    return { pixels: new Float32Array(0), error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}
