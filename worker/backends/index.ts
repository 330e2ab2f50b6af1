// Inference backends behind one interface, and the 'auto' choice among them.
import { loadModel } from '../model.js';
import {
  type BackendName,
  type BackendOptions,
  type BackendSelection,
  type InferenceBackend,
  type LoadedModel,
  ModelError,
  type ModelFormatName,
  type SkippedBackend,
} from '../types.js';
import { createOnnxBackend } from './onnx.js';
import { createOrtGpuBackend, gpuOptionsFromEnv } from './ort-gpu.js';
import { createTfjsBackend } from './tfjs.js';
import { probeWebgpuAdapter } from './webgpu-adapter.js';

export { createOnnxBackend, loadOnnxRuntime } from './onnx.js';
export { createTfjsBackend, loadTfRuntime, memoryHandler, type TfjsFlavor } from './tfjs.js';

export { createOrtGpuBackend, GPU_PROVIDERS } from './ort-gpu.js';
export { probeWebgpuAdapter, describeAdapter, type GpuAdapterInfo } from './webgpu-adapter.js';

/** The backends 'auto' tries, in order: GPUs first (cuda, then a hardware WebGPU adapter), then CPUs. */
export const BACKEND_NAMES: readonly BackendName[] = ['cuda', 'webgpu', 'tfjs-node-gpu', 'tfjs-node', 'onnx', 'tfjs-wasm'];
/** Every backend name: the auto order plus those taken only by name (tensorrt builds engines for minutes). */
export const ALL_BACKEND_NAMES: readonly BackendName[] = [...BACKEND_NAMES, 'tensorrt'];

export function isBackendName(s: string): s is BackendName {
  return (ALL_BACKEND_NAMES as readonly string[]).includes(s);
}

const ORT_BACKENDS: readonly BackendName[] = ['onnx', 'webgpu', 'cuda', 'tensorrt'];

/** The model format a backend runs. */
export function backendFormat(name: BackendName): ModelFormatName {
  return ORT_BACKENDS.includes(name) ? 'onnx' : 'tfjs';
}

async function createNamed(model: LoadedModel, name: BackendName, opts: BackendOptions): Promise<InferenceBackend> {
  if (opts.format !== undefined && backendFormat(name) !== opts.format) {
    throw new Error(`backend ${name} runs the ${backendFormat(name)} format, but the ${opts.format} format was asked for`);
  }
  if (name === 'webgpu' || name === 'cuda' || name === 'tensorrt') return createOrtGpuBackend(model, name, opts);
  // the CPU provider with the device stage in its graph (used to test that stage's counts)
  if (name === 'onnx' && (opts.gpu?.deviceAblation ?? gpuOptionsFromEnv().deviceAblation) === true) return createOrtGpuBackend(model, 'cpu', opts);
  if (name === 'onnx') return createOnnxBackend(model, opts);
  return createTfjsBackend(model, name, opts);
}

/** Why 'auto' must not take WebGPU here (no adapter, or only a software fallback adapter), or undefined. */
async function webgpuAutoVeto(): Promise<string | undefined> {
  const p = await probeWebgpuAdapter();
  if (!p.adapter) return `no WebGPU adapter: ${p.error ?? 'none found'}`;
  if (p.adapter.isFallbackAdapter) {
    return `the only adapter is a software fallback (${p.adapter.description}, ${p.adapter.driver}); auto never takes it, ask for it with --backend webgpu`;
  }
  return undefined;
}

/**
 * Loads a backend for a model (a LoadedModel, or a manifest path / model folder).
 *
 * A named backend loads or throws a clear error. 'auto' tries tfjs-node-gpu, tfjs-node, onnx
 * (when the manifest has an onnx format) and tfjs-wasm, takes the first that loads and returns
 * why the ones before it were skipped. A runtime that is missing or cannot start is skipped; a
 * problem with the model itself (ModelError: hash mismatch, wrong shapes, unreadable file) is
 * thrown at once, since another backend would only hide it.
 */
export async function createBackend(
  modelOrPath: LoadedModel | string,
  name: 'auto' | BackendName,
  opts: BackendOptions = {},
): Promise<BackendSelection> {
  if (name !== 'auto' && !isBackendName(name)) {
    throw new Error(`unknown backend "${String(name)}" (expected auto, ${ALL_BACKEND_NAMES.join(', ')})`);
  }
  const model = typeof modelOrPath === 'string' ? await loadModel(modelOrPath, opts.format ? { formats: [opts.format] } : {}) : modelOrPath;
  if (name !== 'auto') return { backend: await createNamed(model, name, opts), skipped: [] };

  const skipped: SkippedBackend[] = [];
  for (const candidate of BACKEND_NAMES) {
    const fmt = backendFormat(candidate);
    if (opts.format !== undefined && fmt !== opts.format) {
      skipped.push({ name: candidate, reason: `runs the ${fmt} format; the ${opts.format} format is pinned` });
      continue;
    }
    if (!model.manifest.formats[fmt]) {
      skipped.push({ name: candidate, reason: `the manifest has no ${fmt} format` });
      continue;
    }
    if (!model.formats[fmt]) {
      skipped.push({ name: candidate, reason: `the ${fmt} format was not loaded` });
      continue;
    }
    if (candidate === 'webgpu') {
      const veto = await webgpuAutoVeto();
      if (veto) {
        skipped.push({ name: candidate, reason: veto });
        continue;
      }
    }
    try {
      return { backend: await createNamed(model, candidate, opts), skipped };
    } catch (e) {
      if (e instanceof ModelError) throw e;
      skipped.push({ name: candidate, reason: (e as Error).message });
    }
  }
  throw new Error(
    `no inference backend could load model ${model.manifest.name} (${model.manifestPath}):\n` +
      skipped.map((s) => `  ${s.name}: ${s.reason}`).join('\n'),
  );
}
