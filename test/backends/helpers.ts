// Shared helpers of the backend tests: fixture paths, parity samples, temp copies, and a tiny
// ONNX writer (protobufjs) for graphs with dynamic or wrong dims that PyTorch fixtures lack.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const root =
  [path.resolve(fileURLToPath(import.meta.url), '../../../..'), process.cwd()].find((d) => fs.existsSync(path.join(d, 'test', 'fixtures', 'models'))) ??
  process.cwd();

export const FIXTURES = path.join(root, 'test', 'fixtures', 'models');
export const TINY = ['tiny-gray', 'tiny-rgb'] as const;
export const fixture = (name: string) => path.join(FIXTURES, name);

/** Every model folder with a parity sample: the fixtures and the shipped models/ (label, dir). */
export function parityModels(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const base of [FIXTURES, path.join(root, 'models')]) {
    if (!fs.existsSync(base)) continue;
    for (const name of fs.readdirSync(base).sort()) {
      const d = path.join(base, name);
      if (fs.existsSync(path.join(d, 'model.manifest.json')) && fs.existsSync(path.join(d, 'parity', 'meta.json'))) out.push([path.relative(root, d), d]);
    }
  }
  return out;
}

export function readF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Float32Array(copy.buffer);
}

export interface Parity {
  /** NCHW inputs */
  x: Float32Array;
  /** PyTorch logits */
  y: Float32Array;
  shape: [number, number, number, number];
  numClasses: number;
  tolerance: number;
  /** kept-view models: the position input (count x 2: row, col) */
  positions?: Float32Array;
}

export function loadParity(dir: string): Parity {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'parity', 'meta.json'), 'utf8'));
  return {
    x: readF32(path.join(dir, 'parity', 'inputs.bin')),
    y: readF32(path.join(dir, 'parity', 'logits.bin')),
    shape: meta.shape,
    numClasses: meta.numClasses,
    tolerance: meta.tolerance ?? 1e-4,
    ...(meta.positions ? { positions: readF32(path.join(dir, 'parity', meta.positions)) } : {}),
  };
}

export function nchwToNhwc(x: Float32Array, [N, C, H, W]: readonly number[]): Float32Array {
  const out = new Float32Array(x.length);
  for (let n = 0; n < N!; n++)
    for (let c = 0; c < C!; c++)
      for (let h = 0; h < H!; h++) for (let w = 0; w < W!; w++) out[((n * H! + h) * W! + w) * C! + c] = x[((n * C! + c) * H! + h) * W! + w]!;
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** argmax per row, lowest index on ties */
export function argmaxRows(logits: ArrayLike<number>, k: number): number[] {
  const out: number[] = [];
  for (let r = 0; r * k < logits.length; r++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (logits[r * k + c]! > logits[r * k + best]!) best = c;
    out.push(best);
  }
  return out;
}

export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** A fresh temp dir holding a copy of a fixture model folder. */
export function copyFixture(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `patchcert-${name}-`));
  fs.cpSync(fixture(name), dir, { recursive: true });
  return dir;
}

export function readManifest(dir: string): Record<string, any> {
  return JSON.parse(fs.readFileSync(path.join(dir, 'model.manifest.json'), 'utf8'));
}

export function writeManifest(dir: string, m: unknown): string {
  const p = path.join(dir, 'model.manifest.json');
  fs.writeFileSync(p, JSON.stringify(m, null, 2));
  return p;
}

export function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

export function rmTemp(dir: string): void {
  if (dir.startsWith(os.tmpdir())) fs.rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- a minimal ONNX writer

const ONNX_PROTO = `
syntax = "proto2";
package onnx;
message AttributeProto { optional string name = 1; optional int64 i = 3; optional int32 type = 20; }
message TensorProto { repeated int64 dims = 1; optional int32 data_type = 2; repeated float float_data = 4; optional string name = 8; }
message Dimension { optional int64 dim_value = 1; optional string dim_param = 2; }
message TensorShapeProto { repeated Dimension dim = 1; }
message TensorTypeProto { optional int32 elem_type = 1; optional TensorShapeProto shape = 2; }
message TypeProto { optional TensorTypeProto tensor_type = 1; }
message ValueInfoProto { optional string name = 1; optional TypeProto type = 2; }
message NodeProto { repeated string input = 1; repeated string output = 2; optional string name = 3; optional string op_type = 4; repeated AttributeProto attribute = 5; }
message GraphProto { repeated NodeProto node = 1; optional string name = 2; repeated TensorProto initializer = 5; repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; }
message OperatorSetIdProto { optional string domain = 1; optional int64 version = 2; }
message ModelProto { optional int64 ir_version = 1; optional string producer_name = 2; optional GraphProto graph = 7; repeated OperatorSetIdProto opset_import = 8; }
`;

type Dim = number | string;

function valueInfo(name: string, dims: Dim[] | undefined) {
  const tensor_type: Record<string, unknown> = { elem_type: 1 };
  if (dims) tensor_type.shape = { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) };
  return { name, type: { tensor_type } };
}

/**
 * ONNX model: x [inputDims] -> GlobalAveragePool -> Flatten -> Gemm(W: k x e, b) -> logits [outputDims].
 * logit j = sum_c W[j][c] * mean(x[:, c]) + b[j]. Declared dims can be anything (dynamic, wrong).
 */
export function buildGapOnnx(opts: { e: number; k: number; inputDims?: Dim[]; outputDims?: Dim[]; seed?: number }): Buffer {
  const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
  const Model = root.lookupType('onnx.ModelProto');
  let s = opts.seed ?? 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const W = Array.from({ length: opts.k * opts.e }, rnd);
  const b = Array.from({ length: opts.k }, rnd);
  const msg = {
    ir_version: 7,
    producer_name: 'patchcert-test',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'gap',
      node: [
        { op_type: 'GlobalAveragePool', input: ['input'], output: ['pooled'], name: 'gap' },
        { op_type: 'Flatten', input: ['pooled'], output: ['flat'], name: 'flat', attribute: [{ name: 'axis', i: 1, type: 2 }] },
        { op_type: 'Gemm', input: ['flat', 'W', 'b'], output: ['logits'], name: 'fc', attribute: [{ name: 'transB', i: 1, type: 2 }] },
      ],
      initializer: [
        { name: 'W', dims: [opts.k, opts.e], data_type: 1, float_data: W },
        { name: 'b', dims: [opts.k], data_type: 1, float_data: b },
      ],
      input: [valueInfo('input', opts.inputDims)],
      output: [valueInfo('logits', opts.outputDims)],
    },
  };
  const err = Model.verify(msg);
  if (err) throw new Error(err);
  return Buffer.from(Model.encode(Model.fromObject(msg)).finish());
}

/** A model folder with a single onnx format and a matching manifest (sha256 computed). */
export function writeOnnxModel(onnx: Buffer, manifest: { height: number; width: number; channels: number; encoding?: string; classes: number }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'patchcert-onnx-'));
  fs.writeFileSync(path.join(dir, 'model.onnx'), onnx);
  writeManifest(dir, {
    schema: 'patchcert-model/1',
    name: 'gap-test',
    input: { height: manifest.height, width: manifest.width, channels: manifest.channels },
    encoding: manifest.encoding ?? 'levine6',
    ablation: { kind: 'column', size: 2, stride: 1 },
    normalization: null,
    classes: Array.from({ length: manifest.classes }, (_, i) => `c${i}`),
    formats: { onnx: { file: 'model.onnx', sha256: sha256(onnx), layout: 'nchw' } },
  });
  return dir;
}
