// GPU backends on onnxruntime-node's execution providers, one backend name each:
//   webgpu   — bundled with onnxruntime-node (Dawn over Vulkan/Metal/D3D12): installs everywhere,
//              runs on any Vulkan device including Mesa's lavapipe (software) in CI.
//   cuda     — the CUDA 12 provider, present only where onnxruntime-node's install fetched it.
//   tensorrt — the same, with TensorRT.
// Every GPU session is built from the model's pinned bytes, rewritten in memory: the WebGPU channel
// workaround (onnx-graph-pad.ts) and, unless disabled, the device-side ablation stage
// (onnx-graph-ablate.ts). Before the backend is handed out, a fixed probe batch runs on the GPU and
// on the CPU provider (gpu-self-check.ts) and the GPU is refused when they disagree.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { encodedInputShape, readModelFormat } from '../model.js';
import { type GpuOptions, type GpuProviderName, type InferenceBackend, type LoadedModel, ModelError, type BackendOptions } from '../types.js';
import { checkPinned, checkRunInput, checkRunOutput, requireFormat, resolveThreads } from './common.js';
import { claimGpuDevice, onDevice } from './gpu-owner.js';
import { DEFAULT_SELF_CHECK_TOLERANCE, checkProbe, probeBatch } from './gpu-self-check.js';
import { OnnxBackend, createOnnxBackend, loadOnnxRuntime, onnxVersions } from './onnx.js';
import { STAGE_IMAGES, STAGE_POSITIONS, composeAblationStage } from './onnx-graph-ablate.js';
import { decodeOnnx, encodeOnnx } from './onnx-graph.js';
import { padConvChannels } from './onnx-graph-pad.js';
import { type GpuAdapterInfo, describeAdapter, probeWebgpuAdapter } from './webgpu-adapter.js';

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

export const GPU_PROVIDERS: readonly GpuProviderName[] = ['webgpu', 'cuda', 'tensorrt'];

/** Folder of onnxruntime-node's native files for this platform. */
export function ortBinaryDir(): string {
  const req = createRequire(import.meta.url);
  return join(dirname(req.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/**
 * Throws an error naming the missing library when onnxruntime-node's install lacks the provider
 * (npm fetches the CUDA provider at install time only with network and without
 * onnxruntime-node-install=skip, which this project's .npmrc sets).
 */
export function checkProviderLibraries(provider: GpuProviderName): void {
  if (provider === 'webgpu') return;
  const dir = ortBinaryDir();
  const ext = process.platform === 'win32' ? 'dll' : 'so';
  const pre = process.platform === 'win32' ? '' : 'lib';
  for (const lib of [`${pre}onnxruntime_providers_shared.${ext}`, `${pre}onnxruntime_providers_${provider}.${ext}`]) {
    const p = join(dir, lib);
    if (!existsSync(p)) {
      throw new Error(
        `backend ${provider}: onnxruntime-node has no ${provider === 'cuda' ? 'CUDA' : 'TensorRT'} provider here, ${p} is missing ` +
          `(it is not in the npm package; on a machine with internet reinstall with \`npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12\`, ` +
          `which needs the CUDA 12 runtime, cuBLAS 12 and cuDNN 9${provider === 'tensorrt' ? ' and TensorRT 10' : ''}; or use --backend webgpu)`,
      );
    }
  }
}

/**
 * GPU options from the environment, under the explicit ones: PATCHCERT_WEBGPU_WORKAROUND=0,
 * PATCHCERT_WEBGPU_LAYOUT=NCHW|NHWC, PATCHCERT_DEVICE_ABLATION=0|1 (1 also puts the stage into
 * the CPU onnx backend's graph), PATCHCERT_GPU_TOLERANCE=x.
 */
export function gpuOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): GpuOptions {
  const o: GpuOptions = {};
  if (env.PATCHCERT_WEBGPU_WORKAROUND === '0') o.channelWorkaround = false;
  const layout = env.PATCHCERT_WEBGPU_LAYOUT?.toUpperCase();
  if (layout) {
    if (layout !== 'NCHW' && layout !== 'NHWC') throw new Error(`PATCHCERT_WEBGPU_LAYOUT must be NCHW or NHWC, got ${env.PATCHCERT_WEBGPU_LAYOUT}`);
    o.preferredLayout = layout;
  }
  if (env.PATCHCERT_DEVICE_ABLATION === '0') o.deviceAblation = false;
  if (env.PATCHCERT_DEVICE_ABLATION === '1') o.deviceAblation = true;
  if (env.PATCHCERT_GPU_TOLERANCE !== undefined) {
    const t = Number(env.PATCHCERT_GPU_TOLERANCE);
    if (!(t >= 0)) throw new Error(`PATCHCERT_GPU_TOLERANCE must be a number >= 0, got ${env.PATCHCERT_GPU_TOLERANCE}`);
    o.selfCheckTolerance = t;
  }
  return o;
}

function providerOptions(provider: GpuProviderName | 'cpu', gpu: GpuOptions): import('onnxruntime-node').InferenceSession.ExecutionProviderConfig {
  if (provider === 'webgpu') return { name: 'webgpu', ...(gpu.preferredLayout ? { preferredLayout: gpu.preferredLayout } : {}) };
  return { name: provider };
}

/** Why the model's default-path session should not take the device stage. */
function noDeviceStage(model: LoadedModel, gpu: GpuOptions): string | undefined {
  if (gpu.deviceAblation === false) return 'deviceAblation is off';
  if (model.manifest.inputView === 'kept') return 'kept-view model (host-built input)';
  return undefined;
}

export class OrtGpuBackend implements InferenceBackend {
  readonly precision = 'float32';
  readonly numClasses: number;
  readonly layout;
  readonly inputShape: readonly [number, number, number];
  readonly inputView;
  readonly device: string;
  readonly versions: Record<string, string>;
  /** the rewrites applied to the graph (for the summary and tests) */
  readonly rewrites: string[];
  private plain: Session | undefined;
  private staged: Session | undefined;
  private readonly perSample: number;
  private readonly perImage: number;

  constructor(
    private readonly ort: Ort,
    /** the execution provider; 'cpu' runs the device stage on the CPU provider (backend name onnx) */
    readonly provider: GpuProviderName | 'cpu',
    private readonly model: LoadedModel,
    private readonly reference: OnnxBackend,
    /** the rewritten graph without / with the device stage */
    private readonly plainBytes: Uint8Array,
    private readonly stagedBytes: Uint8Array | undefined,
    private readonly gpu: GpuOptions,
    readonly adapter: GpuAdapterInfo | undefined,
    rewrites: string[],
    private readonly threads: number,
  ) {
    const m = model.manifest;
    this.layout = reference.layout;
    this.numClasses = m.classes.length;
    this.inputShape = encodedInputShape(m, this.layout);
    this.inputView = m.inputView ?? 'full';
    this.perSample = this.inputShape[0] * this.inputShape[1] * this.inputShape[2];
    this.perImage = m.input.height * m.input.width * m.input.channels;
    this.rewrites = rewrites;
    const v = onnxVersions(ort);
    this.name = provider === 'cpu' ? 'onnx' : provider;
    this.versions = { ...v, 'execution-provider': provider, ...(adapter ? { adapter: describeAdapter(adapter) } : {}) };
    const where = provider === 'webgpu' ? describeAdapter(adapter) : provider === 'cpu' ? `${reference.device}` : 'CUDA device 0';
    this.device = `${provider} (onnxruntime ${v['onnxruntime-node'] ?? ''}): ${where}${stagedBytes ? `; ablations built ${provider === 'cpu' ? 'in the graph' : 'on the device'}` : ''}`;
    // without the stage the executor must build ablations on the host
    if (!stagedBytes) Object.defineProperty(this, 'runAblations', { value: undefined });
  }

  readonly name: GpuProviderName | 'onnx';

  get modelSha256(): string {
    return this.reference.modelSha256;
  }

  private async session(which: 'plain' | 'staged'): Promise<Session> {
    const have = which === 'plain' ? this.plain : this.staged;
    if (have) return have;
    const bytes = which === 'plain' ? this.plainBytes : this.stagedBytes!;
    const fmtPath = this.model.formats.onnx!.path;
    const s = await onDevice(async () => {
      if (this.provider === 'webgpu') claimGpuDevice('webgpu');
      try {
        return await this.ort.InferenceSession.create(bytes, {
          executionProviders: [providerOptions(this.provider, this.gpu)],
          graphOptimizationLevel: 'all',
          executionMode: 'sequential',
          ...(this.provider === 'cpu' ? { intraOpNumThreads: this.threads, interOpNumThreads: 1 } : {}),
        });
      } catch (e) {
        throw new Error(`${fmtPath}: onnxruntime's ${this.provider} provider cannot build a session for model ${this.model.manifest.name}: ${(e as Error).message}`);
      }
    });
    if (which === 'plain') this.plain = s;
    else this.staged = s;
    try {
      await this.selfCheck(which);
    } catch (e) {
      if (which === 'plain') this.plain = undefined;
      else this.staged = undefined;
      await onDevice(() => s.release()).catch(() => undefined);
      throw e;
    }
    return s;
  }

  /** Probe batch on this path against the CPU provider on host-built input (tolerance 0 = off). */
  private async selfCheck(which: 'plain' | 'staged'): Promise<void> {
    const tol = this.gpu.selfCheckTolerance ?? DEFAULT_SELF_CHECK_TOLERANCE;
    if (tol === 0) return;
    const probe = probeBatch(this.model, this.layout);
    const cpu = await this.reference.run(probe.encoded, probe.rows, probe.keptPositions);
    const got = which === 'plain'
      ? await this.runPlain(probe.encoded, probe.rows, probe.keptPositions)
      : await this.runStaged(probe.images, probe.n, probe.ablations);
    checkProbe({ provider: this.name, model: this.model.manifest.name, path: this.model.formats.onnx!.path }, got, cpu, this.numClasses, tol);
  }

  /** Makes sure the default path is built and self-checked (called at load). */
  async prepare(): Promise<void> {
    await this.session(this.stagedBytes ? 'staged' : 'plain');
  }

  async run(input: Float32Array, batch: number, positions?: Float32Array): Promise<Float32Array> {
    checkRunInput(this.name, input, batch, this.perSample);
    await this.session('plain');
    return this.runPlain(input, batch, positions);
  }

  async runAblations(images: Float32Array, n: number, ablations: Float32Array): Promise<Float32Array> {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`${this.name}: image count must be a positive integer, got ${n}`);
    if (images.length !== n * this.perImage) throw new RangeError(`${this.name}: images hold ${images.length} floats, expected ${n} x ${this.perImage}`);
    if (ablations.length === 0 || ablations.length % 4 !== 0) throw new RangeError(`${this.name}: ablations must be A x 4 floats (row, col, rows kept, cols kept), got ${ablations.length}`);
    await this.session('staged');
    return this.runStaged(images, n, ablations);
  }

  private async runPlain(input: Float32Array, batch: number, positions?: Float32Array): Promise<Float32Array> {
    const r = this.reference;
    const feeds: Record<string, import('onnxruntime-node').Tensor> = {
      [r.inputName]: new this.ort.Tensor('float32', input, [batch, ...this.inputShape]),
    };
    if (r.positionName !== undefined) {
      if (!positions || positions.length !== batch * 2) throw new Error(`${this.name}: model ${this.model.manifest.name} takes the kept view and needs ${batch * 2} position values`);
      feeds[r.positionName] = new this.ort.Tensor('float32', positions, [batch, 2]);
    }
    return this.fetch(this.plain!, feeds, batch);
  }

  private async runStaged(images: Float32Array, n: number, positions: Float32Array): Promise<Float32Array> {
    const m = this.model.manifest.input;
    const feeds = {
      [STAGE_IMAGES]: new this.ort.Tensor('float32', images, [n, m.height, m.width, m.channels]),
      [STAGE_POSITIONS]: new this.ort.Tensor('float32', positions, [positions.length / 4, 4]),
    };
    return this.fetch(this.staged!, feeds, n * (positions.length / 4));
  }

  private async fetch(session: Session, feeds: Record<string, import('onnxruntime-node').Tensor>, rows: number): Promise<Float32Array> {
    const name = this.reference.outputName;
    const out = await onDevice(() => session.run(feeds, [name]));
    const y = out[name];
    const fmt = this.model.formats.onnx!;
    if (!y) throw new ModelError(`${fmt.path}: onnxruntime returned no output "${name}"`, fmt.path);
    checkRunOutput(this.model, fmt, y.dims, rows);
    const data = y.type === 'float32' ? (y.data as Float32Array) : Float32Array.from(y.data as Float64Array);
    y.dispose();
    return data.length === rows * this.numClasses ? data : data.slice(0, rows * this.numClasses);
  }

  async dispose(): Promise<void> {
    const sessions = [this.plain, this.staged].filter((s): s is Session => !!s);
    this.plain = this.staged = undefined;
    for (const s of sessions) await onDevice(() => s.release());
    await this.reference.dispose();
  }
}

/**
 * Loads a model on a GPU provider: checks the model on the CPU provider first (hash, names,
 * shapes: the CPU session is kept as the self-check's reference), rewrites the graph, builds
 * the default path's GPU session and self-checks it. A software (fallback) WebGPU adapter is taken
 * only here, by name; createBackend's 'auto' skips it.
 */
export async function createOrtGpuBackend(model: LoadedModel, provider: GpuProviderName | 'cpu', opts: BackendOptions = {}): Promise<OrtGpuBackend> {
  const fmt = requireFormat(model, 'onnx', provider === 'cpu' ? 'onnx' : provider);
  if (provider !== 'cpu') checkProviderLibraries(provider);
  const ort = await loadOnnxRuntime();
  const gpu = { ...gpuOptionsFromEnv(), ...opts.gpu };
  let adapter: GpuAdapterInfo | undefined;
  if (provider === 'webgpu') {
    const probe = await probeWebgpuAdapter();
    // no python3 leaves the adapter unknown (the session decides); no Vulkan at all is an error now
    if (!probe.adapter && probe.error && !probe.error.includes('no python3')) throw new Error(`backend webgpu: no Vulkan adapter: ${probe.error}`);
    adapter = probe.adapter;
  }
  const reference = (await createOnnxBackend(model, { ...(opts.threads !== undefined ? { threads: opts.threads } : {}), ...(opts.expectSha256 ? { expectSha256: opts.expectSha256 } : {}) })) as OnnxBackend;
  try {
    const rewrites: string[] = [];
    // the very bytes the reference session hashed and checked
    const data = await readModelFormat('onnx', fmt.path);
    checkPinned(fmt, data.sha256, reference.modelSha256);
    const graph = decodeOnnx(data.data[0]!);
    if (provider === 'webgpu' && gpu.channelWorkaround !== false) {
      for (const p of padConvChannels(graph)) rewrites.push(`conv ${p.node}: ${p.channels} -> ${p.paddedTo} input channels (onnxruntime#29651)`);
    }
    const plainBytes = encodeOnnx(graph);
    let stagedBytes: Uint8Array | undefined;
    const why = noDeviceStage(model, gpu);
    if (!why) {
      const m = model.manifest;
      const staged = decodeOnnx(plainBytes);
      composeAblationStage(staged, reference.inputName, {
        geom: { height: m.input.height, width: m.input.width },
        channels: m.input.channels,
        encoding: m.encoding,
        layout: reference.layout,
        ...(m.normalization ? { mean: m.normalization.mean, std: m.normalization.std } : {}),
        // doubles are CPU-only in onnxruntime: float32 normalization on a GPU (may differ by 1 ulp)
        normalizeIn: provider === 'cpu' ? 'float64' : 'float32',
      });
      stagedBytes = encodeOnnx(staged);
      rewrites.push(`ablation stage: ${m.encoding} encoding of ${m.input.height}x${m.input.width}x${m.input.channels} images built on the device`);
    } else {
      rewrites.push(`no device ablation stage: ${why}`);
    }
    const backend = new OrtGpuBackend(ort, provider, model, reference, plainBytes, stagedBytes, gpu, adapter, rewrites, resolveThreads(opts.threads));
    try {
      await backend.prepare();
    } catch (e) {
      await backend.dispose().catch(() => undefined);
      throw e;
    }
    return backend;
  } catch (e) {
    await reference.dispose().catch(() => undefined);
    throw e;
  }
}
