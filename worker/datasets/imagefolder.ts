// ImageFolder trees (torchvision's layout): root/<class>/**/<image>, class index = position of the
// class folder in name order, image index = position in (class, walk, file name) order.
// Images are decoded with sharp to 8-bit sRGB, alpha dropped, optionally converted to one luma
// channel, then optionally resized (shorter side) and centre-cropped, as torchvision's
// Resize + CenterCrop do.
import { promises as fsp } from 'node:fs';
import type { Dirent } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { DatasetError, type DatasetItem, type DatasetSpec } from '../types.js';
import {
  type Geometry,
  type ImageReader,
  type Listing,
  forEachLimit,
  geomText,
  readWhole,
  statDatasetPath,
  statOrNull,
  u8ToUnit,
} from './common.js';
import { readImageSize } from './headers.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'];

/** How sharp treats damaged pixel data; 'warning' (sharp's default) rejects any libjpeg/libpng warning. */
export type FailOn = NonNullable<DatasetSpec['failOn']>;

/** Images decoded at once by readBatch (and headers checked at once by indexDataset). */
export const DECODE_CONCURRENCY = 8;

function isImageFile(name: string): boolean {
  const ext = path.extname(name).toLowerCase();
  return IMAGE_EXTENSIONS.includes(ext);
}

/** Plain UTF-16 code-unit order (what Array.prototype.sort does), not locale order. */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function isDirEntry(parent: string, e: Dirent): Promise<boolean> {
  if (e.isDirectory()) return true;
  if (e.isSymbolicLink()) return (await statOrNull(path.join(parent, e.name)))?.isDirectory() ?? false;
  return false;
}

async function readDir(dir: string): Promise<Dirent[]> {
  try {
    return await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new DatasetError(`cannot list ${dir}: ${(err as Error).message}`, dir);
  }
}

/**
 * Image files under one class folder, in torchvision's order: every folder of the walk (the class
 * folder itself included) sorted by path, files sorted by name inside each.
 */
async function classFiles(classDir: string): Promise<string[]> {
  const dirs: string[] = [];
  const walk = async (d: string, seen: Set<string>): Promise<void> => {
    const real = await fsp.realpath(d).catch(() => d);
    if (seen.has(real)) return; // symlink loop
    seen.add(real);
    dirs.push(d);
    for (const e of await readDir(d)) if (await isDirEntry(d, e)) await walk(path.join(d, e.name), seen);
  };
  await walk(classDir, new Set());
  dirs.sort(byName);
  const out: string[] = [];
  for (const d of dirs) {
    const files: string[] = [];
    for (const e of await readDir(d)) {
      if (!isImageFile(e.name)) continue;
      if (e.isFile() || (e.isSymbolicLink() && (await statOrNull(path.join(d, e.name)))?.isFile())) files.push(e.name);
    }
    files.sort(byName);
    for (const f of files) out.push(path.join(d, f));
  }
  return out;
}

/** The folder whose sub-folders are the classes: path, or path/<split> when split is given and exists. */
export async function imageFolderRoot(spec: DatasetSpec): Promise<string> {
  const st = await statDatasetPath(spec.path);
  if (!st.isDirectory()) throw new DatasetError(`imagefolder data set path must be a folder of class folders: ${spec.path}`, spec.path);
  if (spec.split !== undefined) {
    const inner = path.join(spec.path, spec.split);
    if ((await statOrNull(inner))?.isDirectory()) return inner;
  }
  return spec.path;
}

export interface ImageGeometryPlan {
  /** shorter side after resizing, or null for no resize */
  resize: number | null;
  /** centre crop height x width, or null when the decoded (resized) size must equal the model's */
  crop: { height: number; width: number } | null;
}

/**
 * Checks resize/crop against the model geometry. With crop, the crop is square and must equal the
 * model's height and width; with resize but no crop, the resized image is centre-cropped to the
 * model's height x width.
 */
export function imageGeometryPlan(spec: DatasetSpec, expect: Geometry): ImageGeometryPlan {
  const posInt = (name: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new DatasetError(`imagefolder ${name} must be a positive integer, got ${String(v)} (${spec.path})`, spec.path);
    }
    return v;
  };
  const resize = spec.resize === undefined ? null : posInt('resize', spec.resize);
  const crop = spec.crop === undefined ? null : posInt('crop', spec.crop);
  if (crop !== null && (crop !== expect.height || crop !== expect.width)) {
    throw new DatasetError(
      `imagefolder crop ${crop} gives ${crop}x${crop} images but the model expects ${expect.height}x${expect.width} (${spec.path})`,
      spec.path,
    );
  }
  if (resize !== null && crop !== null && crop > resize) {
    throw new DatasetError(`imagefolder crop ${crop} is larger than resize ${resize} (${spec.path})`, spec.path);
  }
  if (resize === null && crop === null) return { resize: null, crop: null };
  return { resize, crop: { height: expect.height, width: expect.width } };
}

export async function listImageFolder(spec: DatasetSpec, expect: Geometry): Promise<Listing> {
  imageGeometryPlan(spec, expect);
  const root = await imageFolderRoot(spec);
  const classNames: string[] = [];
  for (const e of await readDir(root)) if (await isDirEntry(root, e)) classNames.push(e.name);
  classNames.sort(byName);
  if (classNames.length === 0) throw new DatasetError(`imagefolder ${root} has no class sub-folders`, root);
  const items: DatasetItem[] = [];
  for (let label = 0; label < classNames.length; label++) {
    for (const file of await classFiles(path.join(root, classNames[label]!))) {
      items.push({ index: items.length, label, source: path.resolve(file) });
    }
  }
  if (items.length === 0) {
    throw new DatasetError(`imagefolder ${root} has no images (${IMAGE_EXTENSIONS.join(' ')}) in its ${classNames.length} class folders`, root);
  }
  return { root, classNames, items };
}

function sharpError(file: string, err: unknown): DatasetError {
  if (err instanceof DatasetError) return err;
  const msg = ((err as Error)?.message ?? String(err)).trim().split('\n')[0]!;
  return new DatasetError(`${file}: cannot decode image: ${msg}`, file);
}

/**
 * Without resize/crop every image must already have the model's size: checks the headers of the
 * given items (cheap: no pixel decoding), so a wrong-size data set fails before a job starts.
 */
export async function checkImageHeaders(items: readonly DatasetItem[], expect: Geometry, failOn: FailOn = 'warning'): Promise<void> {
  await forEachLimit(items.length, DECODE_CONCURRENCY * 2, async (i) => {
    const file = items[i]!.source;
    let size: { width?: number | undefined; height?: number | undefined } | null;
    try {
      size = await readImageSize(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DatasetError(`file not found: ${file}`, file);
      throw new DatasetError(`cannot read ${file}: ${(err as Error).message}`, file);
    }
    if (!size) {
      try {
        size = await sharp(file, { failOn }).metadata();
      } catch {
        // not an image (empty, truncated, another format under an image name): that image fails
        // with its error when it is decoded, the others are certified
        return;
      }
    }
    if (size.width !== expect.width || size.height !== expect.height) {
      throw new DatasetError(
        `${file}: image is ${size.height}x${size.width} (HxW) but the model expects ${expect.height}x${expect.width}; ` +
          'set resize/crop to rescale images',
        file,
      );
    }
  });
}

/** Python's round(): halves go to the even neighbour (what torchvision's CenterCrop uses). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** torchvision Resize(size) on (h, w): shorter side to size, longer side int(size * long / short). */
export function resizedSize(height: number, width: number, size: number): { height: number; width: number } {
  if (height <= width) {
    if (height === size) return { height, width };
    return { height: size, width: Math.floor((size * width) / height) };
  }
  if (width === size) return { height, width };
  return { height: Math.floor((size * height) / width), width: size };
}

/** torchvision CenterCrop offsets. */
export function centreCropOffsets(height: number, width: number, ch: number, cw: number): { top: number; left: number } {
  return { top: roundHalfEven((height - ch) / 2), left: roundHalfEven((width - cw) / 2) };
}

/** Pillow's convert('L'): ITU-R 601-2 luma on the gamma-encoded values, in Pillow's integer form. */
function rgbToLuma(rgb: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let i = 0, j = 0; i < pixels; i++, j += 3) {
    out[i] = (rgb[j]! * 19595 + rgb[j + 1]! * 38470 + rgb[j + 2]! * 7471 + 0x8000) >>> 16;
  }
  return out;
}

/**
 * Decodes one image file to H x W x C uint8 at the model geometry.
 * Steps: sharp decode (no EXIF auto-rotation, as Pillow) -> 8-bit sRGB, alpha removed -> luma when
 * one channel is wanted -> optional resize of the shorter side with sharp's bilinear ('linear')
 * kernel, shrink-on-load off -> centre crop.
 */
export async function decodeImageFile(file: string, expect: Geometry, plan: ImageGeometryPlan, failOn: FailOn = 'warning'): Promise<Uint8Array> {
  const buf = await readWhole(file);
  let px: Uint8Array;
  let h: number;
  let w: number;
  try {
    const { data, info } = await sharp(buf, { failOn })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`unexpected decoded layout: ${info.width}x${info.height}x${info.channels} (${data.length} bytes)`);
    }
    px = data;
    h = info.height;
    w = info.width;
  } catch (err) {
    throw sharpError(file, err);
  }
  let c = 3;
  if (expect.channels === 1) {
    px = rgbToLuma(px, h * w);
    c = 1;
  }
  if (!plan.crop) {
    if (h !== expect.height || w !== expect.width) {
      throw new DatasetError(
        `${file}: image is ${h}x${w} (HxW) but the model expects ${expect.height}x${expect.width}; set resize/crop to rescale images`,
        file,
      );
    }
    return px;
  }
  if (plan.resize !== null) {
    const to = resizedSize(h, w, plan.resize);
    if (to.height !== h || to.width !== w) {
      try {
        let pipeline = sharp(px, { raw: { width: w, height: h, channels: c as 1 | 3 } }).resize(to.width, to.height, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: false });
        // sharp gives a resized one-channel image back as three equal channels: keep one (exact)
        if (c === 1) pipeline = pipeline.extractChannel(0);
        const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
        if (info.channels !== c || info.width !== to.width || info.height !== to.height) {
          throw new Error(`unexpected resized layout ${info.width}x${info.height}x${info.channels}`);
        }
        px = data;
      } catch (err) {
        throw new DatasetError(`${file}: cannot resize ${h}x${w} to ${to.height}x${to.width}: ${(err as Error).message}`, file);
      }
      h = to.height;
      w = to.width;
    }
  }
  const { height: ch, width: cw } = plan.crop;
  if (ch > h || cw > w) {
    const how = plan.resize !== null ? `after resizing to shorter side ${plan.resize}` : 'without resize';
    throw new DatasetError(`${file}: image is ${h}x${w} (HxW) ${how}, smaller than the ${ch}x${cw} centre crop`, file);
  }
  if (ch === h && cw === w) return px;
  const { top, left } = centreCropOffsets(h, w, ch, cw);
  const out = new Uint8Array(ch * cw * c);
  const row = cw * c;
  for (let y = 0; y < ch; y++) out.set(px.subarray(((top + y) * w + left) * c, ((top + y) * w + left) * c + row), y * row);
  return out;
}

export function createImageFolderReader(spec: DatasetSpec, expect: Geometry): ImageReader {
  const plan = imageGeometryPlan(spec, expect);
  const failOn: FailOn = spec.failOn ?? 'warning';
  const size = expect.height * expect.width * expect.channels;
  let closed = false;
  let rootP: Promise<string> | null = null;

  const fileOf = async (item: DatasetItem): Promise<string> => {
    if (path.isAbsolute(item.source)) return item.source;
    rootP ??= imageFolderRoot(spec);
    return path.join(await rootP, item.source);
  };

  const readInto = async (item: DatasetItem, out: Float32Array, outOffset: number): Promise<void> => {
    if (closed) throw new DatasetError(`reader for ${spec.path} is closed`, item.source);
    const file = await fileOf(item);
    let px: Uint8Array;
    try {
      px = await decodeImageFile(file, expect, plan, failOn);
    } catch (err) {
      if (err instanceof DatasetError && err.source === file && file !== item.source) {
        throw new DatasetError(err.message, item.source);
      }
      throw err;
    }
    if (px.length !== size) {
      throw new DatasetError(`${file}: decoded ${px.length} values, expected ${geomText(expect)} = ${size}`, item.source);
    }
    u8ToUnit(px, 0, size, out, outOffset);
  };

  return {
    height: expect.height,
    width: expect.width,
    channels: expect.channels,
    readInto,
    async read(item) {
      const out = new Float32Array(size);
      await readInto(item, out, 0);
      return out;
    },
    async readBatch(items) {
      const out = new Float32Array(items.length * size);
      await forEachLimit(items.length, DECODE_CONCURRENCY, (i) => readInto(items[i]!, out, i * size));
      return out;
    },
    async close() {
      closed = true;
    },
  };
}
