// How big a work unit is: a few seconds of worker time, on the job's tile grid, and small enough
// that its counts fit one NATS message.
import { type JobSpec, type UnitSize, jobAblations } from '../core/index.js';

/** Forward passes per unit when no size is given: a few seconds on a GPU, tens on a CPU. */
export const DEFAULT_UNIT_PASSES = 4096;

export interface UnitSizeOptions {
  /** images per unit (rounded to the tile grid); default: about `unitPasses` forward passes per unit */
  unitImages?: number;
  /** ablations per unit (rounded to the tile grid); default: all of an image's ablations */
  unitAblations?: number;
  unitPasses?: number;
}

function varintBytes(n: number): number {
  let b = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    b++;
  }
  return b;
}

/**
 * Unit size for a job: `unitPasses` forward passes (all ablations of a few images) unless given,
 * on the tile grid, and small enough that one unit's counts fit a NATS message of `maxPayload`.
 */
export function chooseUnitSize(job: JobSpec, opts: UnitSizeOptions, maxPayload: number): UnitSize {
  const total = jobAblations(job);
  const tile = job.tile;
  const roundUp = (v: number, step: number) => Math.ceil(v / step) * step;
  const ablations = Math.min(roundUp(opts.unitAblations ?? total, tile.ablations), roundUp(total, tile.ablations));
  const perImage = job.numClasses * job.rules.length * varintBytes(Math.min(ablations, total)) + 8;
  const fit = Math.floor(((maxPayload * 3) / 4 - 4096) / perImage);
  const maxImages = Math.floor(fit / tile.images) * tile.images;
  if (maxImages < tile.images) {
    throw new Error(`a unit's counts (${tile.images} images x ${job.numClasses} classes x ${job.rules.length} rules) do not fit the server's max_payload of ${maxPayload} bytes; use a smaller tile or raise max_payload`);
  }
  let images: number;
  if (opts.unitImages !== undefined) {
    images = roundUp(opts.unitImages, tile.images);
    if (images > maxImages) throw new Error(`--unit-images ${opts.unitImages}: a unit of ${images} images would not fit the server's max_payload (${maxPayload} bytes); at most ${maxImages}`);
  } else {
    const want = Math.max(1, Math.round((opts.unitPasses ?? DEFAULT_UNIT_PASSES) / ablations));
    images = Math.min(maxImages, Math.max(tile.images, Math.round(want / tile.images) * tile.images));
  }
  return { images: Math.min(images, roundUp(job.dataset.images, tile.images)), ablations };
}
