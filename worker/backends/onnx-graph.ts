// Reading, editing and writing ONNX graphs in Node (onnx.proto through protobufjs), for the
// rewrites the GPU backends apply before a session is built: the WebGPU channel workaround
// (onnx-graph-pad.ts) and the device-side ablation stage (onnx-graph-ablate.ts).
// proto/onnx.proto is ONNX's own schema (Apache-2.0, copied from onnx 1.12), so a decode and
// re-encode gives back the same bytes and nothing of the model is lost.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** TensorProto.DataType values used here. */
export const DT = { FLOAT: 1, INT64: 7, FLOAT16: 10, DOUBLE: 11 } as const;
/** AttributeProto.AttributeType values used here. */
export const AT = { INT: 2, TENSOR: 4, INTS: 7 } as const;

// Decoded protobufjs messages: plain enough to edit in place, typed loosely on purpose.
export interface OnnxTensor {
  name?: string;
  dims?: unknown[];
  dataType?: number;
  floatData?: number[];
  int64Data?: unknown[];
  doubleData?: number[];
  rawData?: Uint8Array;
}
export interface OnnxAttribute { name: string; type?: number; i?: unknown; ints?: unknown[]; t?: OnnxTensor }
export interface OnnxNode { name?: string; opType: string; domain?: string; input: string[]; output: string[]; attribute?: OnnxAttribute[] }
export interface OnnxValueInfo { name: string; type?: { tensorType?: { elemType?: number; shape?: { dim?: Array<{ dimValue?: unknown; dimParam?: string }> } } } }
export interface OnnxGraph {
  name?: string;
  node: OnnxNode[];
  initializer: OnnxTensor[];
  input: OnnxValueInfo[];
  output: OnnxValueInfo[];
  valueInfo?: OnnxValueInfo[];
}
export interface OnnxModel { graph: OnnxGraph; opsetImport?: Array<{ domain?: string; version?: unknown }> }

function protoPath(): string {
  // dist/worker/backends/onnx-graph.js -> <root>/proto/onnx.proto; also from the sources
  for (const rel of ['../../../proto/onnx.proto', '../../proto/onnx.proto']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('proto/onnx.proto not found next to the patchcert package (is the proto/ folder installed?)');
}

let modelType: protobuf.Type | undefined;
function ModelProto(): protobuf.Type {
  modelType ??= protobuf.loadSync(protoPath()).lookupType('onnx.ModelProto');
  return modelType;
}

export function decodeOnnx(bytes: Uint8Array): OnnxModel {
  const m = ModelProto().decode(bytes) as unknown as OnnxModel;
  if (!m.graph) throw new Error('not an ONNX model: no graph');
  m.graph.node ??= [];
  m.graph.initializer ??= [];
  m.graph.input ??= [];
  m.graph.output ??= [];
  return m;
}

export function encodeOnnx(model: OnnxModel): Uint8Array {
  return ModelProto().encode(model as never).finish();
}

/** int64 fields decode as Long objects (or numbers); dims here are small. */
export function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(String(v));
}

/** The default-domain opset version the model imports. */
export function opsetVersion(model: OnnxModel): number {
  const e = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return e ? num(e.version) : 1;
}

export function floatTensor(name: string, dims: number[], data: ArrayLike<number>): OnnxTensor {
  return { name, dims, dataType: DT.FLOAT, rawData: new Uint8Array(Float32Array.from(data).buffer) };
}

export function doubleTensor(name: string, dims: number[], data: ArrayLike<number>): OnnxTensor {
  return { name, dims, dataType: DT.DOUBLE, rawData: new Uint8Array(Float64Array.from(data).buffer) };
}

export function int64Tensor(name: string, dims: number[], data: readonly number[]): OnnxTensor {
  return { name, dims, dataType: DT.INT64, rawData: new Uint8Array(BigInt64Array.from(data.map((d) => BigInt(d))).buffer) };
}

export function node(opType: string, input: string[], output: string[], name: string, attribute: OnnxAttribute[] = []): OnnxNode {
  return { opType, input, output, name, attribute };
}

export const intAttr = (name: string, i: number): OnnxAttribute => ({ name, type: AT.INT, i });
export const intsAttr = (name: string, ints: number[]): OnnxAttribute => ({ name, type: AT.INTS, ints });

/** A float32 tensor input of the given dims (strings are symbolic dims). */
export function tensorInput(name: string, dims: Array<number | string>, elemType: number = DT.FLOAT): OnnxValueInfo {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/** Static dims of a tensor computed from initializers only (through Cast/Identity), or undefined. */
export function constantDims(graph: OnnxGraph, name: string): number[] | undefined {
  const init = new Map(graph.initializer.map((t) => [t.name ?? '', t]));
  const producer = new Map<string, OnnxNode>();
  for (const n of graph.node) for (const o of n.output) producer.set(o, n);
  let cur = name;
  for (let hops = 0; hops < 8; hops++) {
    const t = init.get(cur);
    if (t) return (t.dims ?? []).map(num);
    const p = producer.get(cur);
    if (!p || (p.opType !== 'Cast' && p.opType !== 'Identity') || !p.input[0]) return undefined;
    cur = p.input[0];
  }
  return undefined;
}

/** A name not used by any tensor or node of the graph, starting from `base`. */
export function freshNamer(graph: OnnxGraph): (base: string) => string {
  const used = new Set<string>();
  for (const n of graph.node) {
    for (const x of [...n.input, ...n.output]) used.add(x);
    if (n.name) used.add(n.name);
  }
  for (const t of graph.initializer) used.add(t.name ?? '');
  for (const v of [...graph.input, ...graph.output]) used.add(v.name);
  return (base: string) => {
    let s = base;
    for (let i = 1; used.has(s); i++) s = `${base}_${i}`;
    used.add(s);
    return s;
  };
}
