// The TensorFlow.js family: tfjs-node-gpu (libtensorflow + CUDA), tfjs-node (libtensorflow CPU)
// and tfjs-wasm (@tensorflow/tfjs + @tensorflow/tfjs-backend-wasm, always installable).
// Models are TF.js LayersModels (or GraphModels) read from disk through an in-memory IOHandler.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { checkFormatHash, encodedInputShape, readModelFormat } from '../model.js';
import { type BackendOptions, type InferenceBackend, type LoadedModel, ModelError, type ResolvedModelFormat } from '../types.js';
import {
  checkInputDims,
  checkOutputDims,
  checkPinned,
  checkRunInput,
  checkRunOutput,
  dryRunError,
  requireFormat,
  resolveThreads,
} from './common.js';

type TF = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type IOHandler = import('@tensorflow/tfjs').io.IOHandler;
type ModelArtifacts = import('@tensorflow/tfjs').io.ModelArtifacts;
type WeightsManifestGroup = import('@tensorflow/tfjs').io.WeightsManifestConfig[number];

export type TfjsFlavor = 'tfjs-node-gpu' | 'tfjs-node' | 'tfjs-wasm';

const require = createRequire(import.meta.url);

/** A TF.js runtime ready to run on one engine backend ('tensorflow' or 'wasm'). */
interface TfRuntime {
  tf: TF;
  /** the tfjs engine backend name */
  engineBackend: string;
  device: string;
  versions: Record<string, string>;
}

// ---------------------------------------------------------------- runtimes (one per process each)

let wasmRuntime: Promise<TfRuntime> | undefined;
const nodeRuntimes = new Map<string, Promise<TfRuntime>>();

/** True when the package itself is absent (not when it is present but a file it needs is missing). */
function isNotInstalled(e: unknown, spec: string): boolean {
  const err = e as NodeJS.ErrnoException;
  const msg = String(err?.message);
  return (
    (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND') &&
    (msg.includes(`Cannot find package '${spec}'`) || msg.includes(`Cannot find module '${spec}'`))
  );
}

function packageVersion(spec: string): string | undefined {
  try {
    return (require(`${spec}/package.json`) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

function gpuName(): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { timeout: 5000 }, (err, stdout) => {
      resolve(err ? undefined : stdout.split('\n')[0]?.trim() || undefined);
    });
  });
}

async function initWasm(opts: BackendOptions): Promise<TfRuntime> {
  const tf = await import('@tensorflow/tfjs');
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // In Node the wasm binaries are read from the package's dist folder by file path.
  const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  const files = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'];
  wasm.setWasmPaths(Object.fromEntries(files.map((f) => [f, path.join(dist, f)])));
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const threadsSupported = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) === true;
  if (threadsSupported && opts.threads !== undefined) wasm.setThreadsCount(resolveThreads(opts.threads));
  let ok: boolean;
  try {
    ok = await tf.setBackend('wasm');
  } catch (e) {
    throw new Error(`tfjs-wasm: the wasm backend failed to initialise (binaries in ${dist}): ${(e as Error).message}`);
  }
  if (!ok || tf.getBackend() !== 'wasm') throw new Error(`tfjs-wasm: the wasm backend failed to initialise (binaries in ${dist}); TF.js is on "${tf.getBackend()}"`);
  await tf.ready();
  const threads = threadsSupported ? wasm.getThreadsCount() : 1;
  const features = [simd ? 'simd' : 'no-simd', threadsSupported ? `threads:${threads}` : 'single-thread'].join(',');
  return {
    tf,
    engineBackend: 'wasm',
    // tfjs-backend-wasm disables its threaded build under Node (tfjs issue #3830): one thread
    device: `wasm${simd ? '-simd' : ''} (tfjs-backend-wasm ${wasm.version_wasm}, ${threads} thread${threads === 1 ? '' : 's'})`,
    versions: {
      'tfjs-core': tf.version_core,
      'tfjs-layers': tf.version_layers,
      'tfjs-converter': tf.version_converter,
      'tfjs-backend-wasm': wasm.version_wasm,
      'wasm-features': features,
      node: process.versions.node,
    },
  };
}

async function initNative(flavor: 'tfjs-node-gpu' | 'tfjs-node', opts: BackendOptions): Promise<TfRuntime> {
  const spec = `@tensorflow/${flavor}`;
  if (opts.threads !== undefined && process.env.TF_NUM_INTRAOP_THREADS === undefined) {
    // read by libtensorflow when the binding creates its context, i.e. at import
    process.env.TF_NUM_INTRAOP_THREADS = String(resolveThreads(opts.threads));
  }
  let mod: { default?: unknown } & Record<string, unknown>;
  try {
    mod = (await import(spec)) as typeof mod;
  } catch (e) {
    if (isNotInstalled(e, spec)) {
      throw new Error(`${flavor} is not installed (optional dependency; libtensorflow download failed at install time or it was skipped)`);
    }
    throw new Error(
      `${flavor} is installed but failed to load (native binding or libtensorflow${flavor === 'tfjs-node-gpu' ? ' / CUDA / cuDNN' : ''} ` +
        `shared libraries missing? its install step downloads libtensorflow): ${(e as Error).message}`,
    );
  }
  const tf = (typeof (mod.default as TF | undefined)?.setBackend === 'function' ? mod.default : mod) as TF;
  if (tf.getBackend() !== 'tensorflow') {
    const ok = await tf.setBackend('tensorflow').catch(() => false);
    if (!ok) throw new Error(`${flavor} loaded but its "tensorflow" backend failed to initialise (TF.js is on "${tf.getBackend()}")`);
  }
  await tf.ready();
  const be = tf.backend() as unknown as { isGPUPackage?: boolean; isUsingGpuDevice?: boolean; binding?: { TF_Version?: string } };
  const libtf = be.binding?.TF_Version;
  if (flavor === 'tfjs-node-gpu' && be.isUsingGpuDevice !== true) {
    throw new Error('tfjs-node-gpu loaded, but TensorFlow sees no GPU device (no GPU, or CUDA/cuDNN libraries not found)');
  }
  if (flavor === 'tfjs-node' && be.isGPUPackage === true) {
    throw new Error('tfjs-node: this process already loaded tfjs-node-gpu, which holds the "tensorflow" backend; use tfjs-node-gpu');
  }
  const threads = process.env.TF_NUM_INTRAOP_THREADS;
  const version = packageVersion(spec) ?? 'unknown';
  const device =
    flavor === 'tfjs-node-gpu'
      ? `gpu:0 ${(await gpuName()) ?? 'CUDA device'} (tfjs-node-gpu ${version}, libtensorflow ${libtf ?? '?'})`
      : `cpu (tfjs-node ${version}, libtensorflow ${libtf ?? '?'}${threads ? `, ${threads} intra-op threads` : ''})`;
  const versions: Record<string, string> = {
    [flavor]: version,
    'tfjs-core': tf.version_core,
    'tfjs-layers': tf.version_layers,
    'tfjs-converter': tf.version_converter,
    node: process.versions.node,
  };
  if (libtf) versions.libtensorflow = libtf;
  return { tf, engineBackend: 'tensorflow', device, versions };
}

/** Loads (once per process) the TF.js runtime of a flavor; rejects with a readable reason when it cannot. */
export function loadTfRuntime(flavor: TfjsFlavor, opts: BackendOptions = {}): Promise<TfRuntime> {
  if (flavor === 'tfjs-wasm') {
    wasmRuntime ??= initWasm(opts).catch((e: unknown) => {
      wasmRuntime = undefined;
      throw e;
    });
    return wasmRuntime;
  }
  let p = nodeRuntimes.get(flavor);
  if (!p) {
    p = initNative(flavor, opts);
    nodeRuntimes.set(flavor, p);
  }
  return p;
}

// ---------------------------------------------------------------- models

/** An IOHandler serving a model.json and its weight files from bytes already read (and hashed). */
export function memoryHandler(modelJson: Record<string, unknown>, weights: readonly Uint8Array[]): IOHandler {
  return {
    load: async (): Promise<ModelArtifacts> => {
      const manifest = modelJson.weightsManifest as WeightsManifestGroup[];
      const total = weights.reduce((s, w) => s + w.byteLength, 0);
      const all = new Uint8Array(total);
      let off = 0;
      for (const w of weights) {
        all.set(w, off);
        off += w.byteLength;
      }
      const art: ModelArtifacts = {
        modelTopology: modelJson.modelTopology as ModelArtifacts['modelTopology'],
        weightSpecs: manifest.flatMap((g) => g.weights),
        weightData: all.buffer,
      };
      for (const k of ['format', 'generatedBy', 'convertedBy', 'trainingConfig', 'signature', 'userDefinedMetadata', 'modelInitializer', 'initializerSignature'] as const) {
        if (modelJson[k] !== undefined) (art as Record<string, unknown>)[k] = modelJson[k];
      }
      return art;
    },
  };
}

interface RunnableModel {
  predict(x: Tensor): Tensor | Tensor[];
  dispose(): void;
  inputs: Array<{ shape?: ReadonlyArray<number | null> }>;
  outputs: Array<{ shape?: ReadonlyArray<number | null> }>;
}

function isGraphModel(modelJson: Record<string, unknown>): boolean {
  const topo = modelJson.modelTopology as Record<string, unknown> | undefined;
  return modelJson.format === 'graph-model' || Array.isArray(topo?.node);
}

/** A LayersModel whose last layer applies softmax outputs probabilities, not the logits patchcert votes on. */
function endsInSoftmax(tf: TF, m: unknown): boolean {
  if (!(m instanceof tf.LayersModel)) return false;
  const last = m.outputLayers?.[0] ?? m.layers[m.layers.length - 1];
  if (!last) return false;
  const cfg = last.getConfig() as { activation?: unknown };
  return last.getClassName() === 'Softmax' || cfg.activation === 'softmax';
}

class TfjsBackend implements InferenceBackend {
  readonly precision = 'float32';
  readonly numClasses: number;
  readonly layout;
  readonly inputShape: readonly [number, number, number];
  readonly device: string;
  readonly versions: Record<string, string>;
  private readonly perSample: number;
  private disposed = false;

  constructor(
    readonly name: TfjsFlavor,
    private readonly rt: TfRuntime,
    private readonly net: RunnableModel,
    private readonly model: LoadedModel,
    private readonly fmt: ResolvedModelFormat,
    readonly modelSha256: string,
  ) {
    this.layout = fmt.entry.layout;
    this.numClasses = model.manifest.classes.length;
    this.inputShape = encodedInputShape(model.manifest, this.layout);
    this.perSample = this.inputShape[0] * this.inputShape[1] * this.inputShape[2];
    this.device = rt.device;
    this.versions = { ...rt.versions };
  }

  async run(input: Float32Array, batch: number): Promise<Float32Array> {
    if (this.disposed) throw new Error(`${this.name}: backend already disposed`);
    checkRunInput(this.name, input, batch, this.perSample);
    const tf = this.rt.tf;
    // TF.js has one global backend per process: make sure ours is the active one
    if (tf.getBackend() !== this.rt.engineBackend) await tf.setBackend(this.rt.engineBackend);
    const y = tf.tidy(() => {
      const x = tf.tensor4d(input, [batch, ...this.inputShape]);
      const out = this.net.predict(x);
      if (Array.isArray(out)) throw new ModelError(`${this.fmt.path}: the model has ${out.length} outputs, expected one (logits)`, this.fmt.path);
      return out;
    });
    try {
      checkRunOutput(this.model, this.fmt, y.shape, batch);
      const data = await y.data();
      if (!(data instanceof Float32Array)) throw new ModelError(`${this.fmt.path}: output is ${y.dtype}, expected float32 logits`, this.fmt.path);
      return data;
    } finally {
      y.dispose();
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.net.dispose();
  }
}

/** Loads the model's tfjs format on a TF.js flavor, checking hash and shapes (NHWC per manifest layout). */
export async function createTfjsBackend(model: LoadedModel, flavor: TfjsFlavor, opts: BackendOptions = {}): Promise<InferenceBackend> {
  const fmt = requireFormat(model, 'tfjs', flavor);
  resolveThreads(opts.threads);
  const rt = await loadTfRuntime(flavor, opts);
  // hash the very bytes the model is built from
  const data = await readModelFormat('tfjs', fmt.path);
  checkFormatHash(model, fmt.entry, data);
  checkPinned(fmt, data.sha256, opts.expectSha256);
  const tf = rt.tf;
  if (tf.getBackend() !== rt.engineBackend) await tf.setBackend(rt.engineBackend);
  const modelJson = data.modelJson!;
  const handler = memoryHandler(modelJson, data.data.slice(1));
  let net: RunnableModel;
  try {
    net = isGraphModel(modelJson)
      ? ((await tf.loadGraphModel(handler)) as unknown as RunnableModel)
      : ((await tf.loadLayersModel(handler, { strict: true })) as unknown as RunnableModel);
  } catch (e) {
    throw new ModelError(`${fmt.path}: TF.js cannot load the model: ${(e as Error).message}`, fmt.path);
  }
  try {
    if (net.inputs.length !== 1) throw new ModelError(`${fmt.path}: the model has ${net.inputs.length} inputs; patchcert feeds exactly one`, fmt.path);
    if (net.outputs.length !== 1) throw new ModelError(`${fmt.path}: the model has ${net.outputs.length} outputs; expected one (logits)`, fmt.path);
    checkInputDims(model, fmt, net.inputs[0]!.shape);
    checkOutputDims(model, fmt, net.outputs[0]!.shape);
    if (endsInSoftmax(tf, net)) {
      throw new ModelError(`${fmt.path}: the model's last layer applies softmax; patchcert expects logits (the vote rule applies softmax itself)`, fmt.path);
    }
    const backend = new TfjsBackend(flavor, rt, net, model, fmt, data.sha256);
    try {
      await backend.run(new Float32Array(backend.inputShape[0] * backend.inputShape[1] * backend.inputShape[2]), 1);
    } catch (e) {
      throw dryRunError(model, fmt, e);
    }
    return backend;
  } catch (e) {
    net.dispose();
    throw e;
  }
}
