// The ImageNet geometry end to end: JPEGs of odd sizes, resize 256 + centre crop 224, column s=25
// (224 band positions, so 224 ablations per image), certified by single-node `patchcert certify`
// and by `patchcert certify --nats` with two real worker processes over a real nats-server.
// Both must give the same bytes, every image must count 224 argmax votes, and every certificate
// must follow from its counts by core/certificate.ts with Δ = m + 24 for an m x m patch.
// The model is the tiny-224 fixture (tinygap, a few KB) rather than ResNet-50, to stay fast.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { type RuleOutcome, certifiedAgainstPatch, certifyCounts, patchDelta, squareDeltas } from '../../core/index.js';
import { type FixtureImage, knownBytes, writeImageFolder } from '../helpers/fixtures-images.js';
import { NatsServer, freePort } from '../../lab/nats-server.js';
import { CLI, FIXTURE_MODELS } from '../../lab/paths.js';
import { Procs } from '../../lab/procs.js';

const MODEL = join(FIXTURE_MODELS, 'tiny-224');
const SCHEME = { kind: 'column' as const, size: 25, stride: 1 };
const GEOM = { height: 224, width: 224 };
const K = 224;

// The fixture's classes, as source colours (training/make_fixtures.py synth_rgb224).
const COLOURS = { red: [204, 51, 51], green: [51, 204, 51], blue: [51, 51, 204], gray: [128, 128, 128] } as const;
type Colour = keyof typeof COLOURS;

/** A JPEG of vertical colour regions (right edges as fractions of the width) with pixel noise. */
function striped(name: string, width: number, height: number, regions: Array<[number, Colour]>, seed: number): FixtureImage {
  const noise = knownBytes(width * height * 3, seed);
  const px = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const colour = COLOURS[regions.find(([edge]) => x < edge * width)![1]];
      for (let c = 0; c < 3; c++) {
        const i = (y * width + x) * 3 + c;
        px[i] = Math.max(0, Math.min(255, colour[c]! + (noise[i]! % 41) - 20));
      }
    }
  }
  return { name, kind: 'jpeg', width, height, channels: 3, pixels: px };
}

// Odd sizes, landscape and portrait; one colour (votes agree), or regions (votes split).
const IMAGES: Record<Colour, FixtureImage[]> = {
  red: [striped('r0.jpg', 300, 260, [[1, 'red']], 1), striped('r1.jpeg', 250, 256, [[0.3, 'green'], [0.75, 'red'], [1, 'blue']], 2)],
  green: [striped('g0.jpg', 256, 400, [[1, 'green']], 3)],
  blue: [striped('b0.jpg', 333, 250, [[0.55, 'blue'], [1, 'red']], 4)],
  gray: [striped('y0.jpg', 411, 287, [[0.4, 'gray'], [0.6, 'red'], [1, 'gray']], 5)],
};
const N = Object.values(IMAGES).flat().length;

/** A free loopback port outside 45300-45399 (kept for another job on this machine). */
async function freePortOutsideReserved(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p < 45300 || p > 45399) return p;
  }
}

const run = promisify(execFile);

test('224x224 column s=25: single-node and distributed certify agree; 224 votes per image; certificates follow core', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-224-'));
  const procs = new Procs();
  let server: NatsServer | undefined;
  t.teardown(async () => {
    if (!t.passed) console.error(`${procs.outputs()}\n----- nats-server\n${server?.logTail(40) ?? ''}`);
    await procs.cleanup();
    await server?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });
  const data = await writeImageFolder(join(dir, 'val'), IMAGES);
  const common = ['--model', MODEL, '--data', data, '--format', 'imagefolder', '--resize', '256', '--crop', '224', '--thresholds', '0.3', '--backend', 'onnx', '--quiet'];

  const single = join(dir, 'single');
  const r = await run(process.execPath, [CLI, 'certify', ...common, '--threads', '1', '--prep-threads', '1', '--out', single], { env: { ...process.env, PATCHCERT_BACKEND: '' } });
  t.regex(r.stdout, new RegExp(`images: ${N} \\(${N} certified, 0 failed\\), 224 ablations each`));

  server = await NatsServer.start({ port: await freePortOutsideReserved(), monitorPort: await freePortOutsideReserved() });
  const workerArgs = ['worker', '--nats', server.url, '--backend', 'onnx', '--threads', '1', '--prep-threads', '1', '--concurrency', '1'];
  const workers = [0, 1].map((i) => procs.cli(`worker-${i}`, [...workerArgs, '--worker-id', `w224-${i}`]));
  const dist = join(dir, 'dist');
  // units of 2 images x 64 ablations (one default tile each): 3 x 4 = 12 units for the two workers
  const c = procs.cli('certify-nats', ['certify', '--nats', server.url, ...common, '--unit-images', '2', '--unit-ablations', '64', '--out', dist]);
  const exit = await c.waitExit(240_000);
  t.is(exit.code, 0, c.output());
  for (const w of workers) w.kill('SIGTERM');
  for (const w of workers) t.is((await w.waitExit(20_000)).code, 0, w.output());
  t.log(workers.map((w) => /\d+ units done/.exec(w.output())?.[0] ?? '? units done').join(', '));

  for (const f of ['images.jsonl', 'certified.csv']) {
    t.deepEqual(await readFile(join(dist, f)), await readFile(join(single, f)), `${f}: distributed = single-node`);
  }
  const summary = JSON.parse(await readFile(join(dist, 'summary.json'), 'utf8'));
  t.deepEqual(summary.job.scheme, SCHEME);
  t.deepEqual(summary.job.geometry, { ...GEOM, channels: 3 });
  t.is(summary.job.maxPatch, 224);
  t.is(summary.run.ablationsRun, N * K);

  // Δ for column s=25 on 224 columns: m + 24 for an m x m patch (a 42x42 patch meets 66 bands)
  const deltas = squareDeltas(SCHEME, GEOM, 224);
  t.is(patchDelta(SCHEME, GEOM, 42, 42), 66);
  t.deepEqual(deltas.slice(0, 3), [25, 26, 27]);
  t.is(deltas[199], 224); // capped at W: every band
  const records = (await readFile(join(single, 'images.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { label: number; results: Record<string, RuleOutcome> });
  t.is(records.length, N);
  const sides: number[] = [];
  for (const rec of records) {
    const am = rec.results.argmax!;
    t.is(am.counts.reduce((a, b) => a + b, 0), K, 'every ablation votes for exactly one class');
    for (const res of Object.values(rec.results)) {
      t.deepEqual({ prediction: res.prediction, abstained: res.abstained, certified: res.certified }, certifyCounts(res.counts, deltas));
      t.is(certifiedAgainstPatch(res.counts, SCHEME, GEOM, 42, 42), res.certified >= 42);
    }
    sides.push(am.certified);
  }
  // the one-colour images are certified against large patches, the split ones against less or none
  t.true(sides.some((m) => m >= 42), `certified sides ${sides}`);
  t.true(sides.some((m) => m < 42), `certified sides ${sides}`);
  t.log(`argmax counts ${records.map((r) => r.results.argmax!.counts.join('/')).join(', ')}; certified sides ${sides.join(', ')}`);
});
