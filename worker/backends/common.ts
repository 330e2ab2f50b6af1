// Helpers shared by the inference backends.
import * as os from 'node:os';
import { describeExpectedInput, encodedInputShape } from '../model.js';
import { type LoadedModel, ModelError, type ModelFormatName, type ResolvedModelFormat } from '../types.js';

export function defaultThreads(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

export function resolveThreads(threads: number | undefined): number {
  if (threads === undefined) return defaultThreads();
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`threads must be a positive integer, got ${threads}`);
  return threads;
}

/** The model's format entry for a backend, or an error saying the manifest lacks it. */
export function requireFormat(model: LoadedModel, format: ModelFormatName, backend: string): ResolvedModelFormat {
  const f = model.formats[format];
  if (!f) {
    const has = Object.keys(model.manifest.formats);
    throw new ModelError(
      `${model.manifestPath}: backend ${backend} needs the ${format} format, but the manifest lists only ${has.join(', ') || 'none'}` +
        (model.manifest.formats[format] ? ' (not loaded: pass it in loadModel formats)' : ''),
      model.manifestPath,
    );
  }
  return f;
}

export function showShape(dims: ReadonlyArray<number | string | null | undefined>): string {
  return `[${dims.map((d) => (d === null || d === undefined || d === '' || (typeof d === 'number' && d < 0) ? '?' : String(d))).join(',')}]`;
}

/** A dim is dynamic when it is unknown, symbolic or negative. */
export function isDynamic(d: number | string | null | undefined): boolean {
  return typeof d !== 'number' || d < 0;
}

/**
 * Checks a graph's declared input dims against the manifest (dynamic dims pass: a dry run checks
 * them). A fixed batch dim other than dynamic is an error: the certifier runs batches of many sizes.
 */
export function checkInputDims(
  model: LoadedModel,
  fmt: ResolvedModelFormat,
  dims: ReadonlyArray<number | string | null | undefined> | undefined,
): void {
  const layout = fmt.entry.layout;
  const expected = encodedInputShape(model.manifest, layout);
  if (!dims || dims.length === 0) return; // unknown rank: the dry run decides
  const fail = (why: string): never => {
    throw new ModelError(
      `${fmt.path}: wrong input shape for model ${model.manifest.name}: ${why}; manifest ${model.manifestPath} expects ` +
        `${describeExpectedInput(model.manifest, layout)}, the model takes ${showShape(dims)}`,
      fmt.path,
    );
  };
  if (dims.length !== 4) fail(`rank ${dims.length}, expected rank 4`);
  for (let i = 0; i < 3; i++) {
    const d = dims[i + 1];
    if (!isDynamic(d) && d !== expected[i]) fail(`dim ${i + 1} is ${d}, expected ${expected[i]}`);
  }
  const b = dims[0];
  if (!isDynamic(b)) fail(`the batch dim is fixed to ${b}; export the model with a dynamic batch axis`);
}

/** Checks a declared output shape [N, classes] (dynamic dims pass). */
export function checkOutputDims(
  model: LoadedModel,
  fmt: ResolvedModelFormat,
  dims: ReadonlyArray<number | string | null | undefined> | undefined,
  when = 'declared',
): void {
  if (!dims || dims.length === 0) return;
  const K = model.manifest.classes.length;
  const ok = dims.length === 2 && (isDynamic(dims[1]) || dims[1] === K);
  if (!ok) {
    throw new ModelError(
      `${fmt.path}: wrong output shape for model ${model.manifest.name}: manifest ${model.manifestPath} lists ${K} classes, ` +
        `so expected [N,${K}] logits, the model's ${when} output is ${showShape(dims)}`,
      fmt.path,
    );
  }
}

/** Checks the actual output of a run of `batch` inputs. */
export function checkRunOutput(model: LoadedModel, fmt: ResolvedModelFormat, dims: readonly number[], batch: number): void {
  const K = model.manifest.classes.length;
  if (dims.length !== 2 || dims[0] !== batch || dims[1] !== K) {
    throw new ModelError(
      `${fmt.path}: wrong output shape for model ${model.manifest.name}: a batch of ${batch} gave ${showShape(dims)}, ` +
        `expected [${batch},${K}] (${K} classes in manifest ${model.manifestPath})`,
      fmt.path,
    );
  }
}

export function checkRunInput(backend: string, input: Float32Array, batch: number, perSample: number): void {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`${backend}: batch must be a positive integer, got ${batch}`);
  if (!(input instanceof Float32Array)) throw new TypeError(`${backend}: input must be a Float32Array`);
  if (input.length !== batch * perSample) {
    throw new RangeError(`${backend}: input has ${input.length} floats, expected batch ${batch} x ${perSample} = ${batch * perSample}`);
  }
}

/** Wraps a failing dry run into an error naming the model file and the shape tried. */
export function dryRunError(model: LoadedModel, fmt: ResolvedModelFormat, err: unknown): ModelError {
  if (err instanceof ModelError) return err;
  const shape = encodedInputShape(model.manifest, fmt.entry.layout);
  return new ModelError(
    `${fmt.path}: model ${model.manifest.name} failed a dry run on a [1,${shape.join(',')}] input ` +
      `(${describeExpectedInput(model.manifest, fmt.entry.layout)} per manifest ${model.manifestPath}): ${(err as Error).message ?? String(err)}`,
    fmt.path,
  );
}

export function checkPinned(fmt: { path: string; format: ModelFormatName }, sha256: string, expect: string | undefined): void {
  if (expect !== undefined && expect !== sha256) {
    throw new ModelError(`${fmt.path}: the ${fmt.format} model hashes to ${sha256}, but the job pins ${expect}; refusing to run it`, fmt.path);
  }
}
