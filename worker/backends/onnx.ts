// onnxruntime-node on CPU: the reference backend for ONNX models (NCHW as exported from PyTorch).
import { encodedInputShape, checkFormatHash, readModelFormat } from '../model.js';
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

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

let ortPromise: Promise<Ort> | undefined;

/** Imports onnxruntime-node once; a failure (no native binary for this platform) is reported, not thrown at import. */
export function loadOnnxRuntime(): Promise<Ort> {
  ortPromise ??= import('onnxruntime-node').catch((e: unknown) => {
    ortPromise = undefined;
    throw new Error(`onnxruntime-node could not be loaded (native binding missing for ${process.platform}-${process.arch}?): ${(e as Error).message}`);
  });
  return ortPromise;
}

export function onnxVersions(ort: Ort): Record<string, string> {
  const v = (ort.env.versions ?? {}) as Record<string, string | undefined>;
  const out: Record<string, string> = { node: process.versions.node };
  if (v.node) out['onnxruntime-node'] = v.node;
  if (v.common) out['onnxruntime-common'] = v.common;
  return out;
}

export class OnnxBackend implements InferenceBackend {
  readonly name = 'onnx' as const;
  readonly precision = 'float32';
  readonly numClasses: number;
  readonly layout;
  readonly inputShape: readonly [number, number, number];
  readonly inputView;
  private readonly perSample: number;

  constructor(
    private readonly ort: Ort,
    private readonly session: Session,
    private readonly model: LoadedModel,
    private readonly fmt: ResolvedModelFormat,
    readonly inputName: string,
    readonly outputName: string,
    /** kept-view models: the graph input for the ablations' positions */
    readonly positionName: string | undefined,
    readonly modelSha256: string,
    readonly device: string,
    readonly versions: Record<string, string>,
  ) {
    this.layout = fmt.entry.layout;
    this.numClasses = model.manifest.classes.length;
    this.inputShape = encodedInputShape(model.manifest, this.layout);
    this.perSample = this.inputShape[0] * this.inputShape[1] * this.inputShape[2];
    this.inputView = model.manifest.inputView ?? 'full';
  }

  async run(input: Float32Array, batch: number, positions?: Float32Array): Promise<Float32Array> {
    checkRunInput('onnx', input, batch, this.perSample);
    const feeds: Record<string, import('onnxruntime-node').Tensor> = {
      [this.inputName]: new this.ort.Tensor('float32', input, [batch, ...this.inputShape]),
    };
    if (this.positionName !== undefined) {
      if (!positions || positions.length !== batch * 2) {
        throw new Error(`onnx: model ${this.model.manifest.name} takes the kept view and needs ${batch * 2} position values (row, col per ablation), got ${positions?.length ?? 'none'}`);
      }
      feeds[this.positionName] = new this.ort.Tensor('float32', positions, [batch, 2]);
    }
    const out = await this.session.run(feeds, [this.outputName]);
    const y = out[this.outputName];
    if (!y) throw new ModelError(`${this.fmt.path}: onnxruntime returned no output "${this.outputName}"`, this.fmt.path);
    checkRunOutput(this.model, this.fmt, y.dims, batch);
    let data: Float32Array;
    if (y.type === 'float32') data = y.data as Float32Array;
    else if (y.type === 'float64') data = Float32Array.from(y.data as Float64Array);
    else throw new ModelError(`${this.fmt.path}: output "${this.outputName}" is ${y.type}, expected float32 logits`, this.fmt.path);
    y.dispose();
    return data.length === batch * this.numClasses ? data : data.slice(0, batch * this.numClasses);
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Loads the model's onnx format into an onnxruntime-node CPU session, checking hash and shapes. */
export async function createOnnxBackend(model: LoadedModel, opts: BackendOptions = {}): Promise<InferenceBackend> {
  const fmt = requireFormat(model, 'onnx', 'onnx');
  const threads = resolveThreads(opts.threads);
  const ort = await loadOnnxRuntime();
  // hash the very bytes the session is built from
  const data = await readModelFormat('onnx', fmt.path);
  checkFormatHash(model, fmt.entry, data);
  checkPinned(fmt, data.sha256, opts.expectSha256);

  let session: Session;
  try {
    session = await ort.InferenceSession.create(data.data[0]!, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
  } catch (e) {
    throw new ModelError(`${fmt.path}: onnxruntime cannot load the model: ${(e as Error).message}`, fmt.path);
  }
  try {
    const pick = (names: readonly string[], wanted: string | undefined, what: 'input' | 'output'): string => {
      if (wanted !== undefined) {
        if (!names.includes(wanted)) {
          throw new ModelError(`${fmt.path}: the manifest's formats.onnx.${what}Name "${wanted}" is not a graph ${what} (graph has: ${names.join(', ')})`, fmt.path);
        }
        return wanted;
      }
      if (names.length === 0) throw new ModelError(`${fmt.path}: the graph has no ${what}s`, fmt.path);
      return names[0]!;
    };
    const kept = model.manifest.inputView === 'kept';
    const positionName = kept ? (fmt.entry.positionName ?? 'position') : undefined;
    const imageInputs = session.inputNames.filter((n) => n !== positionName);
    const inputName = pick(imageInputs, fmt.entry.inputName, 'input');
    const outputName = pick(session.outputNames, fmt.entry.outputName, 'output');
    if (positionName !== undefined && !session.inputNames.includes(positionName)) {
      throw new ModelError(`${fmt.path}: the manifest declares inputView "kept", but the graph has no position input "${positionName}" (graph inputs: ${session.inputNames.join(', ')})`, fmt.path);
    }
    const expected = kept ? 2 : 1;
    if (session.inputNames.length !== expected) {
      throw new ModelError(`${fmt.path}: the graph has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); patchcert feeds exactly ${kept ? `two (${inputName} and ${positionName})` : 'one'}`, fmt.path);
    }
    const posMeta = positionName === undefined ? undefined : session.inputMetadata?.find((m) => m.name === positionName);
    if (posMeta?.isTensor && posMeta.type !== 'float32') {
      throw new ModelError(`${fmt.path}: position input "${positionName}" is ${posMeta.type}, expected float32 [N,2]`, fmt.path);
    }
    const inMeta = session.inputMetadata?.find((m) => m.name === inputName);
    if (inMeta?.isTensor) {
      if (inMeta.type !== 'float32') throw new ModelError(`${fmt.path}: input "${inputName}" is ${inMeta.type}, expected float32`, fmt.path);
      checkInputDims(model, fmt, inMeta.shape);
    }
    const outMeta = session.outputMetadata?.find((m) => m.name === outputName);
    if (outMeta?.isTensor) checkOutputDims(model, fmt, outMeta.shape);

    const versions = onnxVersions(ort);
    const backend = new OnnxBackend(
      ort,
      session,
      model,
      fmt,
      inputName,
      outputName,
      positionName,
      data.sha256,
      `cpu (onnxruntime ${versions['onnxruntime-node'] ?? ''}, ${threads} thread${threads === 1 ? '' : 's'})`.replace(' ,', ','),
      versions,
    );
    // a first dry run: checks dims the graph leaves dynamic, and warms the session up
    try {
      await backend.run(new Float32Array(backend.inputShape[0] * backend.inputShape[1] * backend.inputShape[2]), 1, kept ? new Float32Array(2) : undefined);
    } catch (e) {
      throw dryRunError(model, fmt, e);
    }
    return backend;
  } catch (e) {
    await session.release().catch(() => undefined);
    throw e;
  }
}
