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
import { writeTinyGrayIdx, writeTinyRgbFolder } from '../helpers/tiny-data.js';

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

test('numeric options are checked in one place: flags, job files and the job spec refuse stride 0 and threads 0', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeTinyGrayIdx(join(dir, 'data'), 6);
  const base = ['certify', '--model', join(FIXTURE_MODELS, 'tiny-gray'), '--data', join(dir, 'data'), '--backend', 'onnx', '--out', join(dir, 'out')];
  const stride = await cli([...base, '--stride', '0']);
  t.is(stride.code, 1);
  t.regex(stride.stderr, /--stride must be an integer, at least 1 \(pixels between ablation positions\), got "0"/);
  const threads = await cli([...base, '--threads', '0']);
  t.is(threads.code, 1);
  t.regex(threads.stderr, /--threads must be an integer, 1 to 1024/);
  await writeFile(join(dir, 'job.yaml'), `model: ${join(FIXTURE_MODELS, 'tiny-gray')}\ndata: { path: data }\nscheme: { stride: 0 }\nout: out\n`);
  const file = await cli(['certify', '--job', join(dir, 'job.yaml')]);
  t.is(file.code, 1);
  t.regex(file.stderr, /stride in job file .*job\.yaml must be an integer, at least 1/);
  const workers = await cli(['worker', '--concurrency', '0', '--nats', 'nats://127.0.0.1:1']);
  t.is(workers.code, 1);
  t.regex(workers.stderr, /--concurrency must be an integer, 1 to 1024/);
  // the job-spec check every worker runs says the same
  const { validateJob } = await import('../../core/index.js');
  const single = await cli([...base, '--quiet']);
  t.is(single.code, 0, single.stderr);
  const job = JSON.parse(await readFile(join(dir, 'out', 'job.json'), 'utf8'));
  t.throws(() => validateJob({ ...job, scheme: { ...job.scheme, stride: 0 } }), { message: /ablation stride must be an integer, at least 1/ });
});

test('failed images: exit 2 and a last line of counts; undecodable files are per-image errors; a 1-channel model takes --resize/--crop', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const root = join(dir, 'images');
  await writeTinyRgbFolder(root, 2);
  await writeFile(join(root, '0_red', 'empty.png'), '');
  await writeFile(join(root, '1_green', 'text.png'), 'not an image\n');
  const r = await cli(['certify', '--model', join(FIXTURE_MODELS, 'tiny-rgb'), '--data', root, '--backend', 'onnx', '--threads', '1', '--out', join(dir, 'out'), '--quiet']);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stdout, /images: 10 \(8 certified, 2 failed\)/);
  t.regex(r.stdout, /empty\.png: cannot decode image/);
  t.regex(r.stdout, /text\.png: cannot decode image/);
  t.is(r.stdout.trim().split('\n').pop(), '8/10 images certified, 2 failed; 0 units failed');
  // tiny-gray is 8x8x1: the RGB folder resized to 16 and centre-cropped to 8, in grey
  const g = await cli(['certify', '--model', join(FIXTURE_MODELS, 'tiny-gray'), '--data', root, '--resize', '16', '--crop', '8', '--backend', 'onnx', '--threads', '1', '--out', join(dir, 'gray'), '--quiet']);
  t.is(g.code, 2, g.stderr);
  t.regex(g.stdout, /images: 10 \(8 certified, 2 failed\)/);
  t.notRegex(g.stdout, /unexpected resized layout/);
});

test('--help on every command, the help names --job-id and --unit-ablations; report | head; --out that is a file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const cmd of ['certify', 'demo', 'report', 'coordinator', 'worker', 'status', 'cancel', 'jobs', 'fetch']) {
    const h = await cli([cmd, '--help']);
    t.is(h.code, 0, `${cmd} --help: ${h.stderr}`);
    t.regex(h.stdout, /usage: patchcert/, cmd);
  }
  const help = await cli(['help']);
  t.regex(help.stdout, /--job-id ID/);
  t.regex(help.stdout, /--unit-ablations N/);
  t.regex(help.stdout, /exit status: 0 every image certified; 2 some images or units failed/);
  t.regex((await cli(['coordinator', '--help'])).stdout, /--replicate F[\s\S]*Exit status: [\s\S]*4 workers disagreed/);
  t.regex((await cli(['worker', '--help'])).stdout, /--max-failures-in-a-row N/);

  await writeTinyGrayIdx(join(dir, 'data'), 6);
  const base = ['certify', '--model', join(FIXTURE_MODELS, 'tiny-gray'), '--data', join(dir, 'data'), '--backend', 'onnx', '--quiet'];
  t.is((await cli([...base, '--out', join(dir, 'out')])).code, 0);
  // a reader that stops early (head) is no error of ours
  const piped = await run('sh', ['-c', `"${process.execPath}" "${CLI}" report "${join(dir, 'out')}" | head -c 10; echo " status=$?"`]);
  t.notRegex(piped.stderr, /EPIPE|Error/);
  await writeFile(join(dir, 'a-file'), 'x');
  const onFile = await cli([...base, '--out', join(dir, 'a-file')]);
  t.is(onFile.code, 1);
  t.regex(onFile.stderr, /--out .*a-file is a file, not a folder/);
  const under = await cli([...base, '--out', join(dir, 'a-file', 'sub')]);
  t.is(under.code, 1);
  t.regex(under.stderr, /cannot create output folder .*a-file\/sub: it, or a folder above it, is a file/);
});
