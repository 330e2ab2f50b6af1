// Data set readers: CIFAR-10 binary batches, MNIST-format IDX files and ImageFolder trees.
//
//   indexDataset(spec, expect)       lists and validates a data set, applies the subset and pins
//                                    it by a manifest hash (run once, by the coordinator)
//   createImageReader(spec, expect)  decodes items to H x W x C float32 in [0,1] (run in each
//                                    worker thread; binary files are loaded once per thread)
import { DatasetError, type DatasetIndex, type DatasetSpec } from '../types.js';
import { createCifarReader, listCifar } from './cifar.js';
import { type Geometry, type ImageReader, type Listing, applySubset, checkExpect, manifestSha256 } from './common.js';
import { checkImageHeaders, createImageFolderReader, listImageFolder } from './imagefolder.js';
import { createIdxReader, listIdx } from './idx.js';

export { DatasetError } from '../types.js';
export type { DatasetIndex, DatasetItem, DatasetSpec, DatasetFormat } from '../types.js';
export type { Geometry, ImageReader } from './common.js';
export { U8_TO_UNIT, clearDatasetCache, manifestSha256, readIndexFile, relativeSource, setIdleCacheBytes } from './common.js';
export { CIFAR10_CLASSES, cifarRecordToHwc } from './cifar.js';
export { FASHION_MNIST_CLASSES, MNIST_CLASSES, idxClassNames, loadMaybeGzip, parseIdxImages, parseIdxLabels } from './idx.js';
export { readImageSize, sizeFromHeader } from './headers.js';
export { IMAGE_EXTENSIONS, centreCropOffsets, decodeImageFile, imageGeometryPlan, resizedSize } from './imagefolder.js';
export { DATASET_SOURCES, type FetchedDataset, type FetchOptions, type FetchableDataset, fetchDataset } from './fetch.js';

const FORMATS = ['cifar10-bin', 'idx', 'imagefolder'] as const;

function checkSpec(spec: DatasetSpec): void {
  if (!spec || typeof spec !== 'object') throw new Error('data set spec must be an object');
  if (!(FORMATS as readonly string[]).includes(spec.format)) {
    throw new DatasetError(`unknown data set format "${String(spec.format)}" (${FORMATS.join(', ')})`, String(spec.path));
  }
  if (spec.split !== undefined && spec.split !== 'test' && spec.split !== 'train') {
    throw new DatasetError(`data set split must be 'test' or 'train', got "${String(spec.split)}"`, String(spec.path));
  }
  if (spec.failOn !== undefined && !['warning', 'error', 'truncated'].includes(spec.failOn)) {
    throw new DatasetError(`data set failOn must be 'warning', 'error' or 'truncated', got "${String(spec.failOn)}"`, String(spec.path));
  }
}

async function list(spec: DatasetSpec, expect: Geometry): Promise<Listing> {
  switch (spec.format) {
    case 'cifar10-bin':
      return listCifar(spec, expect);
    case 'idx':
      return listIdx(spec, expect);
    case 'imagefolder':
      return listImageFolder(spec, expect);
  }
}

/**
 * Lists and validates a data set for a model of geometry `expect`, applies the subset (index
 * file, then offset, then limit) and computes the manifest hash. Fails fast with a DatasetError
 * naming the file at fault. Imagefolder data sets without resize/crop get every selected image's
 * header checked against the geometry.
 */
export async function indexDataset(spec: DatasetSpec, expect: Geometry): Promise<DatasetIndex> {
  checkSpec(spec);
  checkExpect(expect);
  const geom: Geometry = { height: expect.height, width: expect.width, channels: expect.channels };
  const listing = await list(spec, geom);
  const items = await applySubset(listing.items, spec);
  if (spec.format === 'imagefolder' && spec.resize === undefined && spec.crop === undefined) {
    await checkImageHeaders(items, geom, spec.failOn ?? 'warning');
  }
  return {
    spec: { ...spec },
    ...geom,
    classNames: listing.classNames,
    items,
    root: listing.root,
    manifestSha256: manifestSha256(spec, geom, listing.root, items),
  };
}

/**
 * A reader of the data set's images at the model geometry, for use inside a worker thread. It is
 * created synchronously and opens files lazily; spec errors surface on the first read.
 * Items are those of indexDataset with the same spec: binary formats look images up by
 * item.index (and check item.label against the file), imagefolder decodes item.source.
 */
export function createImageReader(spec: DatasetSpec, expect: Geometry): ImageReader {
  checkSpec(spec);
  checkExpect(expect);
  const geom: Geometry = { height: expect.height, width: expect.width, channels: expect.channels };
  switch (spec.format) {
    case 'cifar10-bin':
      return createCifarReader(spec, geom);
    case 'idx':
      return createIdxReader(spec, geom);
    case 'imagefolder':
      return createImageFolderReader(spec, geom);
  }
}
