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
import { createTfjsBackend } from './tfjs.js';

export { createOnnxBackend, loadOnnxRuntime } from './onnx.js';
export { createTfjsBackend, loadTfRuntime, memoryHandler, type TfjsFlavor } from './tfjs.js';

/** Every backend, in the order 'auto' tries them. */
export const BACKEND_NAMES: readonly BackendName[] = ['tfjs-node-gpu', 'tfjs-node', 'onnx', 'tfjs-wasm'];

export function isBackendName(s: string): s is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(s);
}

/** The model format a backend runs. */
export function backendFormat(name: BackendName): ModelFormatName {
  return name === 'onnx' ? 'onnx' : 'tfjs';
}

async function createNamed(model: LoadedModel, name: BackendName, opts: BackendOptions): Promise<InferenceBackend> {
  if (opts.format !== undefined && backendFormat(name) !== opts.format) {
    throw new Error(`backend ${name} runs the ${backendFormat(name)} format, but the ${opts.format} format was asked for`);
  }
  return name === 'onnx' ? createOnnxBackend(model, opts) : createTfjsBackend(model, name, opts);
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
    throw new Error(`unknown backend "${String(name)}" (expected auto, ${BACKEND_NAMES.join(', ')})`);
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
