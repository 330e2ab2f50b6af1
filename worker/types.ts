// Types shared by the data set readers, the model backends and the pipelines that use them.
import type { AblationScheme, DatasetItem, Encoding, InputView, Layout } from '../core/index.js';

export type { DatasetItem } from '../core/index.js';

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
  /**
   * imagefolder: how strictly sharp treats damaged image data (sharp's failOn). Default 'warning':
   * any libjpeg/libpng warning (corrupt data, premature end) is an error naming the file;
   * 'truncated' accepts warnings but still rejects truncated files (closest to Pillow).
   */
  failOn?: 'warning' | 'error' | 'truncated';
}

/** The indexed, subset data set a job runs on. */
export interface DatasetIndex {
  spec: DatasetSpec;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  items: DatasetItem[];
  /** folder the manifest takes item sources relative to (see relativeSource in worker/datasets) */
  root?: string;
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
  /** onnx, kept-view models only: the graph input taking each ablation's (row, col) as float32 (default "position") */
  positionName?: string;
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
  /** "kept": a band-native model taking only the kept pixels and their position (core/kept-view.ts); absent = "full" */
  inputView?: InputView;
  /** per encoded channel, (v - mean) / std applied by patchcert after encoding; absent = none */
  normalization?: { mean: number[]; std: number[] } | null;
  classes: string[];
  formats: { onnx?: ModelFormatEntry; tfjs?: ModelFormatEntry };
  /** free-form provenance: data set, epochs, accuracy on ablated validation images, … */
  training?: Record<string, unknown>;
}

export type BackendName = 'onnx' | 'tfjs-node-gpu' | 'tfjs-node' | 'tfjs-wasm' | GpuProviderName;

/** onnxruntime-node's GPU execution providers, as backend names (worker/backends/ort-gpu.ts) */
export type GpuProviderName = 'webgpu' | 'cuda' | 'tensorrt';

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
  /** per-sample encoded input dims in the layout's order, e.g. [2, 28, 28] (nchw) or [28, 28, 2] (nhwc) */
  readonly inputShape?: readonly [number, number, number];
  /** arithmetic precision of the logits, e.g. "float32" */
  readonly precision?: string;
  /** "kept" for band-native models: run() then also takes each row's (row, col) position */
  readonly inputView?: InputView;
  /** input: batch x encoded tensor (layout as above); positions: batch x 2 (kept view only); returns batch x numClasses logits */
  run(input: Float32Array, batch: number, positions?: Float32Array): Promise<Float32Array>;
  /**
   * GPU backends: builds A ablations of `n` decoded images (n x H x W x C, as the readers give
   * them) on the device and returns n x A rows of logits, image-major. `ablations` is A x 4
   * (stageAblations in worker/backends/onnx-graph-ablate.ts). Absent when the backend takes only
   * host-built encoded ablations (run).
   */
  runAblations?(images: Float32Array, n: number, ablations: Float32Array): Promise<Float32Array>;
  dispose(): Promise<void>;
}

// ---------------------------------------------------------------- loaded models and backends
// (added with worker/model.ts and worker/backends/: compatible extensions of the types above)

export type ModelFormatName = 'onnx' | 'tfjs';

/** Raised for a bad model (manifest, files, hashes, shapes); always names the file at fault. */
export class ModelError extends Error {
  constructor(message: string, readonly file: string) {
    super(message);
    this.name = 'ModelError';
  }
}

/** One format of a loaded model, with its files resolved against the manifest's folder. */
export interface ResolvedModelFormat {
  format: ModelFormatName;
  entry: ModelFormatEntry;
  /** absolute path of the .onnx file or of the tfjs model.json */
  path: string;
  /** every file the hash covers, in hashing order (onnx: the file; tfjs: model.json then weights) */
  files: string[];
  /** sha256 computed from the files (equal to entry.sha256 when the model was verified) */
  sha256: string;
}

/** What loadModel returns: the validated manifest and its formats. */
export interface LoadedModel {
  /** absolute path of model.manifest.json */
  manifestPath: string;
  /** folder of the manifest; format files are relative to it */
  dir: string;
  manifest: ModelManifest;
  /** sha256 of the manifest file's bytes */
  manifestSha256: string;
  formats: { onnx?: ResolvedModelFormat; tfjs?: ResolvedModelFormat };
}

export interface BackendOptions {
  /** CPU threads for onnx (intraOpNumThreads) and tfjs-node (TF_NUM_INTRAOP_THREADS); default: all cores */
  threads?: number;
  /** refuse to load unless the format in use has this sha256 (a job's pinned model) */
  expectSha256?: string;
  /** only use this model format (a job pins one); 'auto' then skips backends of the other format */
  format?: ModelFormatName;
  /** GPU backends (webgpu, cuda, tensorrt): see GpuOptions in worker/backends/ort-gpu.ts */
  gpu?: GpuOptions;
}

export interface GpuOptions {
  /** webgpu: pad convolutions with 6, 9, 15, … input channels to a multiple of 4 (microsoft/onnxruntime#29651); default true */
  channelWorkaround?: boolean;
  /** webgpu: the provider's preferredLayout (NHWC is its default and faster; NCHW also avoids #29651) */
  preferredLayout?: 'NCHW' | 'NHWC';
  /** build the ablations on the device from decoded images (default true; kept-view models always take host-built input) */
  deviceAblation?: boolean;
  /** refuse the GPU when its logits on a fixed probe batch differ from the CPU provider's by more than this (default 1e-3; 0 disables the check) */
  selfCheckTolerance?: number;
}

export interface SkippedBackend {
  name: BackendName;
  reason: string;
}

/** What createBackend returns: the backend it loaded and, for 'auto', why the ones before it were skipped. */
export interface BackendSelection {
  backend: InferenceBackend;
  /** backends tried (or not applicable) before the one taken, in 'auto' order, with the reason */
  skipped: SkippedBackend[];
}
