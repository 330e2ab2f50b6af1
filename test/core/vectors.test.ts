// Shared test vectors of the ablation geometry and encodings: test/vectors/ablation.json holds the
// cases (image sizes, schemes, positions, kept pixels with wrap-around, encoded values) that both
// core/ (here) and training/ablation.py (training/test_smoke.py) must reproduce exactly, so the
// models are trained on the very ablations patchcert certifies.
//
// The file is a stored reference: this test fails when core/ no longer gives it. After a deliberate
// change of the geometry or an encoding, regenerate it (and review the diff):
//
//   PATCHCERT_WRITE_VECTORS=1 npx ava dist/test/core/vectors.test.js
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import {
  type AblationScheme,
  type Encoding,
  ablationCount,
  ablationPosition,
  encodeAblation,
  encodedSize,
  keptGeometry,
  keptMask,
} from '../../core/index.js';
import { REPO_ROOT } from '../../lab/paths.js';

const FILE = join(REPO_ROOT, 'test', 'vectors', 'ablation.json');

interface GeometryInput {
  name: string;
  scheme: AblationScheme;
  height: number;
  width: number;
}
interface EncodingInput extends GeometryInput {
  channels: number;
  encoding: Encoding;
  index: number;
}

const GEOMETRY: GeometryInput[] = [
  { name: 'column s=2 stride 1: the band at the last column wraps to column 0', scheme: { kind: 'column', size: 2, stride: 1 }, height: 3, width: 5 },
  { name: 'column s=3 stride 2 on an odd width: a denser grid at the seam, bands wrap', scheme: { kind: 'column', size: 3, stride: 2 }, height: 2, width: 5 },
  { name: 'column s = width: every ablation keeps everything', scheme: { kind: 'column', size: 4, stride: 1 }, height: 2, width: 4 },
  { name: 'row s=2 stride 1: the band at the last row wraps to row 0', scheme: { kind: 'row', size: 2, stride: 1 }, height: 4, width: 3 },
  { name: 'row s=2 stride 3 on height 7', scheme: { kind: 'row', size: 2, stride: 3 }, height: 7, width: 2 },
  { name: 'block s=2 stride 1 on 3x3: row-major order, blocks wrap in both axes', scheme: { kind: 'block', size: 2, stride: 1 }, height: 3, width: 3 },
  { name: 'block s=3 stride 2 on a 5x4 image (not square)', scheme: { kind: 'block', size: 3, stride: 2 }, height: 5, width: 4 },
];

const ENCODING: EncodingInput[] = [
  { name: 'levine6, 1 channel, column band wrapping', scheme: { kind: 'column', size: 2, stride: 1 }, height: 2, width: 3, channels: 1, encoding: 'levine6', index: 2 },
  { name: 'mask, 1 channel, column band', scheme: { kind: 'column', size: 2, stride: 1 }, height: 2, width: 3, channels: 1, encoding: 'mask', index: 0 },
  { name: 'levine6, 3 channels, wrapped block', scheme: { kind: 'block', size: 2, stride: 1 }, height: 3, width: 3, channels: 3, encoding: 'levine6', index: 8 },
  { name: 'mask, 3 channels, row band wrapping', scheme: { kind: 'row', size: 2, stride: 2 }, height: 3, width: 2, channels: 3, encoding: 'mask', index: 1 },
  { name: 'levine6, 3 channels, column band on a stride grid', scheme: { kind: 'column', size: 2, stride: 2 }, height: 2, width: 5, channels: 3, encoding: 'levine6', index: 2 },
];

/** Pixel values that float32 holds exactly, and so does 1 - x: k/8 for k = 1..8. */
function testImage(h: number, w: number, c: number): number[] {
  return Array.from({ length: h * w * c }, (_, i) => (((i * 3) % 8) + 1) / 8);
}

function geometryCase(g: GeometryInput) {
  const geom = { height: g.height, width: g.width };
  const count = ablationCount(g.scheme, geom);
  const ablations = Array.from({ length: count }, (_, index) => {
    const p = ablationPosition(g.scheme, geom, index);
    const m = keptMask(g.scheme, geom, index);
    const kept = Array.from({ length: g.height }, (_, r) => Array.from(m.subarray(r * g.width, (r + 1) * g.width)).join(''));
    return { index, position: [p.row, p.col], kept };
  });
  return { ...g, count, ablations };
}

function encodingCase(e: EncodingInput) {
  const geom = { height: e.height, width: e.width };
  const image = testImage(e.height, e.width, e.channels);
  const spec = { scheme: e.scheme, geom, channels: e.channels, encoding: e.encoding, layout: 'nchw' as const };
  const full = new Float32Array(encodedSize(spec));
  encodeAblation(spec, Float32Array.from(image), e.index, full, 0);
  const keptSpec = { ...spec, view: 'kept' as const };
  const kept = new Float32Array(encodedSize(keptSpec));
  encodeAblation(keptSpec, Float32Array.from(image), e.index, kept, 0);
  const kg = keptGeometry(e.scheme, geom);
  const p = ablationPosition(e.scheme, geom, e.index);
  return { ...e, image, position: [p.row, p.col], full: Array.from(full), keptShape: [kg.height, kg.width], kept: Array.from(kept) };
}

function vectors() {
  return {
    schema: 'patchcert-ablation-vectors/1',
    about: [
      'Ablation geometry and encodings that core/ (TypeScript) and training/ablation.py (Python) must both reproduce.',
      'geometry: for each ablation index, position [row, col] of the kept band or block (top-left, before wrapping) and the kept mask, one string per image row (1 = kept).',
      'encoding: image is H x W x C row-major in [0, 1]; full is the encoded ablation in NCHW (levine6: x then 1-x on kept pixels, 0 elsewhere; mask: x on kept pixels then a 0/1 mask channel); kept is the kept view (kept rows x kept cols in wrap order), NCHW.',
      'Regenerate from core/ with PATCHCERT_WRITE_VECTORS=1 npx ava dist/test/core/vectors.test.js',
    ],
    geometry: GEOMETRY.map(geometryCase),
    encoding: ENCODING.map(encodingCase),
  };
}

test('core/ reproduces test/vectors/ablation.json', (t) => {
  const want = vectors();
  if (process.env.PATCHCERT_WRITE_VECTORS) {
    // one line per array of numbers or strings: a mask or a tensor reads as a row
    writeFileSync(FILE, JSON.stringify(want, null, 1).replace(/\[\s*([^[\]{}]*?)\s*\]/g, (_, body: string) => `[${body.split(/,\s*/).join(', ')}]`) + '\n');
    t.log(`wrote ${FILE}`);
  }
  const stored = JSON.parse(readFileSync(FILE, 'utf8'));
  t.deepEqual(stored, want);
});

/** The design's rule, written out: kept iff (r - row) mod H < rows kept and (c - col) mod W < cols kept. */
function ruleMask(scheme: AblationScheme, H: number, W: number, [r0, c0]: number[]): string[] {
  const rowLen = scheme.kind === 'column' ? H : scheme.size;
  const colLen = scheme.kind === 'row' ? W : scheme.size;
  return Array.from({ length: H }, (_, r) =>
    Array.from({ length: W }, (_, c) => ((r - r0! + H) % H < rowLen && (c - c0! + W) % W < colLen ? '1' : '0')).join(''),
  );
}

test('the stored vectors say what the design says: wrap-around, stride grid, encodings', (t) => {
  const v = JSON.parse(readFileSync(FILE, 'utf8')) as ReturnType<typeof vectors>;
  // against the rule itself, not against core/: positions on the stride grid, block indices row-major
  for (const g of v.geometry) {
    const { kind, stride } = g.scheme;
    const rows = kind === 'column' ? [0] : Array.from({ length: Math.ceil(g.height / stride) }, (_, i) => i * stride);
    const cols = kind === 'row' ? [0] : Array.from({ length: Math.ceil(g.width / stride) }, (_, i) => i * stride);
    t.is(g.count, rows.length * cols.length, g.name);
    t.is(g.ablations.length, g.count, g.name);
    for (const a of g.ablations) {
      t.deepEqual(a.position, [rows[Math.floor(a.index / cols.length)], cols[a.index % cols.length]], g.name);
      t.deepEqual(a.kept, ruleMask(g.scheme, g.height, g.width, a.position), `${g.name}, ablation ${a.index}`);
    }
  }
  // the wrap-around, spelt out: column band s=2 at column 4 of 5 keeps columns 4 and 0
  t.deepEqual(v.geometry[0]!.ablations[4]!.kept, ['10001', '10001', '10001']);
  for (const e of v.encoding) {
    const { height: H, width: W, channels: C } = e;
    const mask = ruleMask(e.scheme, H, W, e.position);
    const E = e.encoding === 'levine6' ? 2 * C : C + 1;
    t.is(e.full.length, E * H * W, e.name);
    for (let ch = 0; ch < E; ch++) {
      for (let r = 0; r < H; r++) {
        for (let c = 0; c < W; c++) {
          const kept = mask[r]![c] === '1';
          const x = e.image[(r * W + c) * C + (ch % C)]!;
          const want = !kept ? 0 : ch < C ? x : e.encoding === 'levine6' ? 1 - x : 1;
          t.is(e.full[ch * H * W + r * W + c], want, `${e.name}: channel ${ch}, pixel (${r}, ${c})`);
        }
      }
    }
  }
});
