// Small data sets the tiny fixture models classify, written in the real on-disk formats.
import { join } from 'node:path';
import sharp from 'sharp';
import { mkdir } from 'node:fs/promises';
import { writeIdx } from './fixtures-images.js';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

/** 8x8 grey, as training/make_fixtures.py synth_gray: bright top rows (0), bottom rows (1) or stripes (2). */
export function synthGray(cls: number, rand: () => number): Float32Array {
  const H = 8, W = 8;
  const img = new Float32Array(H * W);
  const colGain = Array.from({ length: W }, () => rand() ** 2);
  for (let r = 0; r < H; r++) {
    const on = cls === 0 ? r < 4 : cls === 1 ? r >= 4 : r % 2 === 0;
    for (let c = 0; c < W; c++) img[r * W + c] = Math.fround(Math.min(1, rand() * 0.4 + (on ? 0.5 * colGain[c]! : 0)));
  }
  return img;
}

/** Writes n tiny-gray images as MNIST-format IDX (t10k-*) into dir. */
export async function writeTinyGrayIdx(dir: string, n: number, seed = 3): Promise<{ labels: number[]; bytes: Uint8Array[] }> {
  const rand = rng(seed);
  const labels = Array.from({ length: n }, (_, i) => i % 3);
  const bytes = labels.map((l) => Uint8Array.from(synthGray(l, rand), (v) => Math.round(v * 255)));
  await writeIdx(dir, { rows: 8, cols: 8, images: bytes, labels }, { gzip: true });
  return { labels, bytes };
}

const RGB_BASE = [[0.8, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.2, 0.8], [0.5, 0.5, 0.5]];

/** Writes an ImageFolder of 8x8 PNGs for tiny-rgb (classes red, green, blue, gray): perClass images each. */
export async function writeTinyRgbFolder(root: string, perClass: number, seed = 5): Promise<string[]> {
  const rand = rng(seed);
  const names = ['0_red', '1_green', '2_blue', '3_gray'];
  const files: string[] = [];
  for (let c = 0; c < 4; c++) {
    await mkdir(join(root, names[c]!), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.alloc(8 * 8 * 3);
      const gain = 0.6 + 0.4 * rand();
      for (let p = 0; p < 64; p++)
        for (let ch = 0; ch < 3; ch++) px[p * 3 + ch] = Math.round(255 * Math.min(1, Math.max(0, RGB_BASE[c]![ch]! * gain + 0.2 * (rand() - 0.5))));
      const file = join(root, names[c]!, `${String(i).padStart(3, '0')}.png`);
      await sharp(px, { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(file);
      files.push(file);
    }
  }
  return files;
}
