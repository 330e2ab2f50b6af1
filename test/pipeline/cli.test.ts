// The patchcert command line, run as a user runs it.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CIFAR10_CLASSES } from '../../worker/datasets/index.js';
import { CLI, FIXTURE_MODELS } from '../../lab/paths.js';
import { cifarRecords, writeCifarFolder } from '../helpers/fixtures-images.js';
import { writeTinyGrayIdx } from '../helpers/tiny-data.js';

const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, PATCHCERT_BACKEND: '' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('certify, then report, from the command line and from a YAML job file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeTinyGrayIdx(join(dir, 'data'), 30);
  const out = join(dir, 'out');
  const r = await cli(['certify', '--model', join(FIXTURE_MODELS, 'tiny-gray'), '--data', join(dir, 'data'),
    '--thresholds', '0.2,0.4', '--backend', 'onnx', '--threads', '1', '--prep-threads', '1', '--out', out]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /backend: onnx/);
  t.regex(r.stdout, /images: 30 \(30 certified, 0 failed\), 8 ablations each/);
  t.regex(r.stdout, /^\s+0\.2\s+\d+\.\d\d%/m);
  t.regex(r.stdout, /^\s+argmax\s+\d+\.\d\d%/m);
  const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8'));
  t.deepEqual(summary.job.rules, [0.2, 0.4, 'argmax']);
  t.is(summary.job.scheme.kind, 'column'); // from the model's manifest
  const rep = await cli(['report', out]);
  t.is(rep.code, 0);
  t.true(rep.stdout.includes(r.stdout.split('\n')[0]!));

  // Same job from a YAML file (paths relative to the file): same certificates.
  await writeFile(join(dir, 'job.yaml'), [
    `model: ${join(FIXTURE_MODELS, 'tiny-gray')}`,
    'data: { path: data, format: idx }',
    'thresholds: [0.2, 0.4]',
    'backend: onnx',
    'threads: 1',
    'out: out2',
  ].join('\n'));
  const y = await cli(['certify', '--job', join(dir, 'job.yaml'), '--quiet']);
  t.is(y.code, 0, y.stderr);
  t.is(await readFile(join(dir, 'out2', 'images.jsonl'), 'utf8'), await readFile(join(out, 'images.jsonl'), 'utf8'));
});

test('bad input ends with exit code 1 and a message naming the culprit', async (t) => {
  const missing = await cli(['certify', '--data', '/nonexistent/cifar', '--out', join(tmpdir(), 'x')]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /\/nonexistent\/cifar/);
  const flag = await cli(['certify', '--bogus']);
  t.is(flag.code, 1);
  t.regex(flag.stderr, /bogus/);
  const noReport = await cli(['report', '/nonexistent/out']);
  t.is(noReport.code, 1);
  t.regex(noReport.stderr, /\/nonexistent\/out/);
  const help = await cli(['help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /usage: patchcert <command>/);
  t.regex(help.stdout, /^  demo /m);
});

test('fetch: an installed data set is recognised without the network; unknown or missing names are refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-fetch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeCifarFolder(join(dir, 'cifar-10-batches-bin'), {
    test: cifarRecords(4, 1),
    train: [0, 1, 2, 3, 4].map((b) => cifarRecords(1, b + 2)),
    meta: CIFAR10_CLASSES,
  });
  const r = await cli(['fetch', 'cifar10', '--dir', dir]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /already installed/);
  const printed = /data set in (\S+)/.exec(r.stdout)?.[1];
  t.is(printed, join(dir, 'cifar-10-batches-bin'));
  t.regex(r.stdout, /--format cifar10-bin/);

  const bad = await cli(['fetch', 'imagenet']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /unknown data set "imagenet" \(cifar10, mnist, fashion-mnist\)/);
  const none = await cli(['fetch']);
  t.is(none.code, 2);
  t.regex(none.stderr, /NAME missing/);
  const help = await cli(['help']);
  t.regex(help.stdout, /^  fetch /m);
});
