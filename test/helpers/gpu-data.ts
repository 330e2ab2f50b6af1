// A CIFAR-shaped ImageFolder (10 classes, 32x32 RGB PNGs) for certify runs of the CIFAR models
// that must not depend on the real data set being unpacked.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { rng } from './tiny-data.js';

export const CIFAR_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/** n images (round-robin over the classes): smooth random colour fields with noise. */
export async function writeCifarLikeFolder(root: string, n: number, seed = 11): Promise<string> {
  const rand = rng(seed);
  for (const [i, c] of CIFAR_CLASSES.entries()) await mkdir(join(root, `${i}_${c}`), { recursive: true });
  for (let k = 0; k < n; k++) {
    const cls = k % 10;
    const px = Buffer.alloc(32 * 32 * 3);
    const base = [rand(), rand(), rand()];
    const grad = [rand() - 0.5, rand() - 0.5, rand() - 0.5];
    for (let r = 0; r < 32; r++)
      for (let c = 0; c < 32; c++)
        for (let ch = 0; ch < 3; ch++) {
          const v = base[ch]! + grad[ch]! * ((r + c) / 64) + 0.15 * (rand() - 0.5);
          px[(r * 32 + c) * 3 + ch] = Math.round(255 * Math.min(1, Math.max(0, v)));
        }
    await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(root, `${cls}_${CIFAR_CLASSES[cls]}`, `${String(k).padStart(4, '0')}.png`));
  }
  return root;
}
