// Work planning: the (image x ablation) space cut into inference tiles and work units.
//
// A tile is what one backend call sees: up to `images` consecutive job images x up to
// `ablations` consecutive ablation indices, on a grid fixed by the job alone. Units are unions
// of whole tiles, so however a job is sharded every backend call gets the same batch, and the
// logits (hence the votes) cannot depend on the sharding even on backends whose numerics vary
// with batch composition.

export interface TileShape {
  images: number;
  ablations: number;
}

export interface UnitRange {
  imgStart: number;
  imgEnd: number;
  ablStart: number;
  ablEnd: number;
}

export interface WorkUnit extends UnitRange {
  id: string;
}

export function unitId(r: UnitRange): string {
  return `i${r.imgStart}-${r.imgEnd}.a${r.ablStart}-${r.ablEnd}`;
}

export function parseUnitId(id: string): UnitRange {
  const m = /^i(\d+)-(\d+)\.a(\d+)-(\d+)$/.exec(id);
  if (!m) throw new Error(`malformed unit id "${id}"`);
  const r = { imgStart: +m[1]!, imgEnd: +m[2]!, ablStart: +m[3]!, ablEnd: +m[4]! };
  if (r.imgEnd <= r.imgStart || r.ablEnd <= r.ablStart) throw new Error(`empty unit "${id}"`);
  return r;
}

function positiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
}

export function validateTile(tile: TileShape, ablations: number): void {
  positiveInt('tile images', tile.images);
  positiveInt('tile ablations', tile.ablations);
  if (tile.ablations > ablations) throw new Error(`tile ablations ${tile.ablations} exceeds the ${ablations} ablations per image`);
}

/** A sensible tile: all ablations of an image when few, else blocks of 64; images so a batch is ~64-256 inputs. */
export function defaultTile(ablations: number): TileShape {
  const a = Math.min(ablations, 64);
  return { ablations: a, images: Math.max(1, Math.floor(128 / a)) };
}

/** Tiles of a unit (or of any tile-aligned range), in a fixed order. */
export function tilesOf(r: UnitRange, tile: TileShape, totalImages: number, totalAblations: number): UnitRange[] {
  const out: UnitRange[] = [];
  for (let i = r.imgStart; i < r.imgEnd; i += tile.images) {
    for (let a = r.ablStart; a < r.ablEnd; a += tile.ablations) {
      out.push({
        imgStart: i,
        imgEnd: Math.min(i + tile.images, r.imgEnd, totalImages),
        ablStart: a,
        ablEnd: Math.min(a + tile.ablations, r.ablEnd, totalAblations),
      });
    }
  }
  return out;
}

export interface UnitSize {
  /** images per unit, rounded up to a multiple of the tile's */
  images: number;
  /** ablations per unit, rounded up to a multiple of the tile's (and capped at all ablations) */
  ablations: number;
}

/** Plans tile-aligned units covering images [0, totalImages) x ablations [0, totalAblations) exactly once. */
export function planUnits(totalImages: number, totalAblations: number, tile: TileShape, size: UnitSize): WorkUnit[] {
  positiveInt('images', totalImages);
  positiveInt('ablations', totalAblations);
  validateTile(tile, totalAblations);
  positiveInt('unit images', size.images);
  positiveInt('unit ablations', size.ablations);
  const ui = Math.ceil(size.images / tile.images) * tile.images;
  const ua = Math.min(Math.ceil(size.ablations / tile.ablations) * tile.ablations, Math.ceil(totalAblations / tile.ablations) * tile.ablations);
  const units: WorkUnit[] = [];
  for (let i = 0; i < totalImages; i += ui) {
    for (let a = 0; a < totalAblations; a += ua) {
      const r = { imgStart: i, imgEnd: Math.min(i + ui, totalImages), ablStart: a, ablEnd: Math.min(a + ua, totalAblations) };
      units.push({ ...r, id: unitId(r) });
    }
  }
  return units;
}

/** Checks a unit lies on the job's tile grid (a unit from elsewhere must not split a backend batch). */
export function isTileAligned(r: UnitRange, tile: TileShape, totalImages: number, totalAblations: number): boolean {
  const edge = (start: number, end: number, step: number, total: number) =>
    start >= 0 && start % step === 0 && end > start && end <= total && (end % step === 0 || end === total);
  return edge(r.imgStart, r.imgEnd, tile.images, totalImages) && edge(r.ablStart, r.ablEnd, tile.ablations, totalAblations);
}
