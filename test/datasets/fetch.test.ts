import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { DATASET_SOURCES, DatasetError, createImageReader, fetchDataset, indexDataset } from '../../worker/datasets/index.js';
import { type DatasetSource, installDataset, md5File, unpackTarGz, verifyChecksum } from '../../worker/datasets/fetch.js';
import { cifarRecords, removeDir, tempDir, toUnit, writeCifarFolder } from '../helpers/fixtures-images.js';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** A fetch that serves local bytes by URL and records every request. */
function fakeFetch(files: Record<string, Buffer>, calls: string[]): typeof globalThis.fetch {
  return (async (input: string | URL | Request) => {
    const url = String(input);
    calls.push(url);
    const body = files[url];
    if (!body) return new Response('not found', { status: 404, statusText: 'Not Found' });
    return new Response(body, { status: 200, headers: { 'content-length': String(body.length) } });
  }) as typeof globalThis.fetch;
}

const offline = (async () => {
  throw new TypeError('fetch failed', { cause: Object.assign(new Error('getaddrinfo ENOTFOUND www.cs.toronto.edu'), { code: 'ENOTFOUND' }) });
}) as typeof globalThis.fetch;

async function fakeCifarArchive(dir: string) {
  const src = path.join(dir, 'src');
  const recs = cifarRecords(3, 9);
  await writeCifarFolder(path.join(src, 'cifar-10-batches-bin'), {
    test: recs,
    train: [0, 1, 2, 3, 4].map((b) => cifarRecords(1, b)),
    meta: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'],
  });
  const archive = path.join(dir, 'fake-cifar.tar.gz');
  execFileSync('tar', ['-czf', archive, '-C', src, 'cifar-10-batches-bin']);
  const bytes = await fsp.readFile(archive);
  const source: DatasetSource = {
    ...DATASET_SOURCES.cifar10,
    files: [{ name: 'cifar-10-binary.tar.gz', md5: md5(bytes), urls: ['https://mirror.invalid/a.tar.gz', 'https://official.invalid/cifar-10-binary.tar.gz'] }],
  };
  return { recs, archive, bytes, source };
}

test('checksum verification and unpacking of a local archive', async (t) => {
  const dir = await tempDir();
  try {
    const { archive, bytes } = await fakeCifarArchive(dir);
    t.is(await md5File(archive), md5(bytes));
    await verifyChecksum(archive, md5(bytes));
    const e = await t.throwsAsync(verifyChecksum(archive, DATASET_SOURCES.cifar10.files[0]!.md5), { instanceOf: DatasetError });
    t.true(e!.message.startsWith(`${archive}: md5 ${md5(bytes)} does not match the published c32a1d4ab5d03f1284b67883e8d87530`));
    const out = path.join(dir, 'out');
    await fsp.mkdir(out);
    await unpackTarGz(archive, out);
    t.true(existsSync(path.join(out, 'cifar-10-batches-bin', 'test_batch.bin')));
    const junk = path.join(dir, 'junk.tar.gz');
    await fsp.writeFile(junk, 'not gzip');
    await t.throwsAsync(unpackTarGz(junk, out), { instanceOf: DatasetError, message: new RegExp(`^${junk.replace(/[.]/g, '\\.')}: cannot unpack`) });
  } finally {
    await removeDir(dir);
  }
});

test('install: downloads (falling back past a 404), verifies, unpacks, and is readable; then idempotent', async (t) => {
  const dir = await tempDir();
  try {
    const { recs, bytes, source } = await fakeCifarArchive(dir);
    const calls: string[] = [];
    const dest = path.join(dir, 'data');
    const log: string[] = [];
    const got = await installDataset('cifar10', source, dest, {
      fetch: fakeFetch({ 'https://official.invalid/cifar-10-binary.tar.gz': bytes }, calls),
      log: (m) => log.push(m),
    });
    t.deepEqual(calls, ['https://mirror.invalid/a.tar.gz', 'https://official.invalid/cifar-10-binary.tar.gz']);
    t.deepEqual(got, { name: 'cifar10', format: 'cifar10-bin', path: path.join(dest, 'cifar-10-batches-bin') });
    t.false(existsSync(path.join(dest, 'cifar-10-binary.tar.gz'))); // archive removed after unpacking
    t.false(existsSync(path.join(dest, 'cifar-10-binary.tar.gz.part')));
    const idx = await indexDataset({ format: got.format, path: got.path }, { height: 32, width: 32, channels: 3 });
    t.is(idx.items.length, 3);
    const r = createImageReader({ format: got.format, path: got.path }, { height: 32, width: 32, channels: 3 });
    t.deepEqual(await r.read(idx.items[2]!), toUnit(recs[2]!.hwc));
    await r.close();
    // second call: nothing fetched
    const again = await installDataset('cifar10', source, dest, { fetch: offline });
    t.is(again.path, got.path);
  } finally {
    await removeDir(dir);
  }
});

test('a file already in place with the right md5 is used without the network', async (t) => {
  const dir = await tempDir();
  try {
    const { bytes, source } = await fakeCifarArchive(dir);
    const dest = path.join(dir, 'offline');
    await fsp.mkdir(dest);
    await fsp.writeFile(path.join(dest, 'cifar-10-binary.tar.gz'), bytes);
    const got = await installDataset('cifar10', source, dest, { fetch: offline });
    t.true(existsSync(path.join(got.path, 'data_batch_5.bin')));
  } finally {
    await removeDir(dir);
  }
});

test('a download with the wrong md5 is refused and removed', async (t) => {
  const dir = await tempDir();
  try {
    const { bytes, source } = await fakeCifarArchive(dir);
    const tampered = Buffer.from(bytes);
    tampered[tampered.length - 1] ^= 0xff;
    const dest = path.join(dir, 'data');
    const e = await t.throwsAsync(
      installDataset('cifar10', source, dest, {
        fetch: fakeFetch({ 'https://official.invalid/cifar-10-binary.tar.gz': tampered }, []),
      }),
      { instanceOf: DatasetError },
    );
    t.regex(e!.message, /could not download cifar-10-binary\.tar\.gz for cifar10/);
    t.regex(e!.message, /HTTP 404/);
    t.regex(e!.message, new RegExp(`downloaded file has md5 ${md5(tampered)}, not the published ${source.files[0]!.md5}`));
    t.deepEqual(await fsp.readdir(dest), []);
  } finally {
    await removeDir(dir);
  }
});

test('without network the error says what failed and how to proceed offline', async (t) => {
  const dir = await tempDir();
  try {
    const e = await t.throwsAsync(fetchDataset('cifar10', dir, { fetch: offline }), { instanceOf: DatasetError });
    const m = e!.message;
    t.true(m.startsWith('could not download cifar-10-binary.tar.gz for cifar10: https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz: fetch failed: ENOTFOUND'), m);
    t.regex(m, /needs internet access/);
    t.regex(m, /md5 is c32a1d4ab5d03f1284b67883e8d87530/);
    t.true(m.includes(path.join(dir, 'cifar-10-binary.tar.gz')));

    const e2 = await t.throwsAsync(fetchDataset('fashion-mnist', dir, { fetch: offline }), { instanceOf: DatasetError });
    t.regex(e2!.message, /fashion-mnist\.s3-website\.eu-central-1\.amazonaws\.com\/train-images-idx3-ubyte\.gz/);
    t.regex(e2!.message, /raw\.githubusercontent\.com\/zalandoresearch/);
    t.true(e2!.message.includes(path.join(dir, 'fashion-mnist', 'train-images-idx3-ubyte.gz')));
    const e3 = await t.throwsAsync(fetchDataset('mnist', dir, { fetch: offline }), { instanceOf: DatasetError });
    t.regex(e3!.message, /f68b3c2dcbeaaa9fbdd348bbdeb94873/);
  } finally {
    await removeDir(dir);
  }
});

test('IDX sources: files stay gzipped in dir/<name> and read back through indexDataset', async (t) => {
  const dir = await tempDir();
  try {
    const { gzipSync } = await import('node:zlib');
    const { idxImagesBytes, idxLabelsBytes, idxSet } = await import('../helpers/fixtures-images.js');
    const s = idxSet(3, 28, 28, 1);
    const files: Record<string, Buffer> = {
      't10k-images-idx3-ubyte.gz': gzipSync(idxImagesBytes(s)),
      't10k-labels-idx1-ubyte.gz': gzipSync(idxLabelsBytes(s.labels)),
    };
    const source: DatasetSource = {
      format: 'idx',
      subdir: 'fashion-mnist',
      files: Object.entries(files).map(([name, b]) => ({ name, md5: md5(b), urls: [`https://x.invalid/${name}`] })),
      installed: [],
    };
    const served = Object.fromEntries(Object.entries(files).map(([n, b]) => [`https://x.invalid/${n}`, b]));
    const got = await installDataset('fashion-mnist', source, dir, { fetch: fakeFetch(served, []) });
    t.is(got.path, path.join(dir, 'fashion-mnist'));
    const idx = await indexDataset({ format: 'idx', path: got.path }, { height: 28, width: 28, channels: 1 });
    t.is(idx.items.length, 3);
    t.is(idx.classNames[0], 'T-shirt/top');
    // present and verified: no second download
    await installDataset('fashion-mnist', source, dir, { fetch: offline });
  } finally {
    await removeDir(dir);
  }
});
