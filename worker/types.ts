// Types shared by the data set readers, the model backends and the pipelines that use them.
import type { AblationScheme, Encoding, Layout } from '../core/index.js';

// ---------------------------------------------------------------- data sets

export type DatasetFormat = 'cifar10-bin' | 'imagefolder' | 'idx';

export interface DatasetSpec {
  format: DatasetFormat;
  /**
   * cifar10-bin: the cifar-10-batches-bin folder (or one .bin file);
   * imagefolder: the root whose sub-folders are classes (sorted name = class index);
   * idx: a folder holding MNIST-format files (t10k-* / train-*, .gz or not), or the images file itself.
   */
  path: string;
  /** which split of a folder: 'test' (default) or 'train' (cifar10-bin, idx) */
  split?: 'test' | 'train';
  /** imagefolder: resize so the shorter side is this many pixels (ImageNet style, e.g. 256) */
  resize?: number;
  /** imagefolder: centre crop to this square side after resizing (e.g. 224) */
  crop?: number;
  /** subset: skip this many images of the (index-file filtered) list */
  offset?: number;
  /** subset: keep at most this many images */
  limit?: number;
  /** subset: a text file of data set indices, one per line (applied before offset/limit) */
  indexFile?: string;
}

/** One image of a job: its index in the data set, its label and where it comes from. */
export interface DatasetItem {
  index: number;
  label: number;
  /** file path (imagefolder) or "file#record" (binary formats), used in errors and reports */
  source: string;
}

/** The indexed, subset data set a job runs on. */
export interface DatasetIndex {
  spec: DatasetSpec;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  items: DatasetItem[];
  /** sha256 over the item list (index, label, source) and the geometry: pins the data set in a job */
  manifestSha256: string;
}

/** Raised for bad data set input; always names the file (and record) at fault. */
export class DatasetError extends Error {
  constructor(message: string, readonly source: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

// ---------------------------------------------------------------- models

export interface ModelFormatEntry {
  /** path relative to the manifest's folder */
  file: string;
  /** onnx: sha256 of the file; tfjs: sha256 of model.json followed by its weight files in manifest order */
  sha256: string;
  layout: Layout;
  /** onnx only: graph input/output names (default: the first of each) */
  inputName?: string;
  outputName?: string;
}

/** model.manifest.json, beside the model files. */
export interface ModelManifest {
  schema: 'patchcert-model/1';
  name: string;
  /** the source image the model certifies: H x W x C in [0,1] before encoding */
  input: { height: number; width: number; channels: number };
  encoding: Encoding;
  /** the ablation the model was trained for */
  ablation: AblationScheme;
  /** per encoded channel, (v - mean) / std applied by patchcert after encoding; absent = none */
  normalization?: { mean: number[]; std: number[] } | null;
  classes: string[];
  formats: { onnx?: ModelFormatEntry; tfjs?: ModelFormatEntry };
  /** free-form provenance: data set, epochs, accuracy on ablated validation images, … */
  training?: Record<string, unknown>;
}

export type BackendName = 'onnx' | 'tfjs-node-gpu' | 'tfjs-node' | 'tfjs-wasm';

/** Batch of encoded ablations in, logits out. */
export interface InferenceBackend {
  readonly name: BackendName;
  /** e.g. "cpu (onnxruntime, 2 threads)", "gpu:0 NVIDIA H100", "wasm-simd" */
  readonly device: string;
  /** sha256 of the model format in use (checked against the manifest at load) */
  readonly modelSha256: string;
  readonly numClasses: number;
  readonly layout: Layout;
  /** versions of the runtime packages, recorded in results */
  readonly versions: Record<string, string>;
  /** input: batch x encoded tensor (layout as above); returns batch x numClasses logits */
  run(input: Float32Array, batch: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}
