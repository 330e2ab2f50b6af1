// Downloads CIFAR-10 (binary version), MNIST and Fashion-MNIST from their official sources,
// verifies the published md5 checksums and unpacks, giving a folder that indexDataset reads.
// A file already in place with the right checksum is not downloaded again, so an offline machine
// can be served by copying the official files there by hand.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { DatasetError, type DatasetFormat } from '../types.js';
import { statOrNull } from './common.js';

export type FetchableDataset = 'cifar10' | 'mnist' | 'fashion-mnist';

export interface SourceFile {
  name: string;
  md5: string;
  /** tried in order; the first is the official host */
  urls: string[];
}

export interface DatasetSource {
  format: DatasetFormat;
  /** folder under dir that fetchDataset returns as the data set path */
  subdir: string;
  /** downloads land in dir/subdir, except archives, which land in dir and unpack there */
  files: SourceFile[];
  /** the files are .tar.gz archives that unpack into dir (creating subdir) and are then deleted */
  archive?: boolean;
  /** files (relative to dir/subdir) whose presence means the data set is installed */
  installed: string[];
}

const MNIST_HOSTS = ['https://yann.lecun.com/exdb/mnist/', 'https://ossci-datasets.s3.amazonaws.com/mnist/'];
const FASHION_HOSTS = [
  'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
  'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/',
];
const idxFiles = (hosts: string[], md5: Record<string, string>): SourceFile[] =>
  Object.entries(md5).map(([name, sum]) => ({ name, md5: sum, urls: hosts.map((h) => h + name) }));

export const DATASET_SOURCES: Record<FetchableDataset, DatasetSource> = {
  cifar10: {
    format: 'cifar10-bin',
    subdir: 'cifar-10-batches-bin',
    archive: true,
    files: [
      {
        name: 'cifar-10-binary.tar.gz',
        md5: 'c32a1d4ab5d03f1284b67883e8d87530',
        urls: ['https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'],
      },
    ],
    installed: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin', 'batches.meta.txt'],
  },
  mnist: {
    format: 'idx',
    subdir: 'mnist',
    files: idxFiles(MNIST_HOSTS, {
      'train-images-idx3-ubyte.gz': 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
      'train-labels-idx1-ubyte.gz': 'd53e105ee54ea40749a09fcbcd1e9432',
      't10k-images-idx3-ubyte.gz': '9fb629c4189551a2d022fa330f9573f3',
      't10k-labels-idx1-ubyte.gz': 'ec29112dd5afa0611ce80d1b7f02629c',
    }),
    installed: [],
  },
  'fashion-mnist': {
    format: 'idx',
    subdir: 'fashion-mnist',
    files: idxFiles(FASHION_HOSTS, {
      'train-images-idx3-ubyte.gz': '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
      'train-labels-idx1-ubyte.gz': '25c81989df183df01b3e8a0aad5dffbe',
      't10k-images-idx3-ubyte.gz': 'bef4ecab320f06d8554ea6380940ec79',
      't10k-labels-idx1-ubyte.gz': 'bb300cfdad3c16e7a12a480ee83cd310',
    }),
    installed: [],
  },
};

export interface FetchOptions {
  /** fetch implementation (default: the global fetch) */
  fetch?: typeof globalThis.fetch;
  signal?: AbortSignal;
  /** progress messages (default: none) */
  log?: (message: string) => void;
  /** keep downloaded archives after unpacking (default false) */
  keepArchive?: boolean;
}

export interface FetchedDataset {
  name: string;
  format: DatasetFormat;
  /** the data set path for a DatasetSpec */
  path: string;
}

export async function md5File(file: string): Promise<string> {
  const h = createHash('md5');
  await pipeline(createReadStream(file), async function* (src: AsyncIterable<Buffer>) {
    for await (const chunk of src) h.update(chunk);
  });
  return h.digest('hex');
}

/** Throws a DatasetError naming the file when its md5 is not the published one. */
export async function verifyChecksum(file: string, md5: string): Promise<void> {
  const got = await md5File(file);
  if (got !== md5.toLowerCase()) {
    throw new DatasetError(`${file}: md5 ${got} does not match the published ${md5} (corrupt, incomplete or wrong file)`, file);
  }
}

/** Unpacks a .tar.gz into dir with the system tar; errors name the archive. */
export function unpackTarGz(archive: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('tar', ['-xzf', archive, '-C', dir, '--no-same-owner'], { maxBuffer: 1 << 20 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the tar program is not installed' : String(stderr).trim() || err.message;
      reject(new DatasetError(`${archive}: cannot unpack: ${why}`, archive));
    });
  });
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const cause = e?.cause ? `: ${e.cause.code ?? ''}${e.cause.code && e.cause.message ? ' ' : ''}${e.cause.message ?? ''}` : '';
  return `${e?.message ?? String(err)}${cause}`;
}

async function downloadTo(url: string, dest: string, opts: FetchOptions): Promise<string> {
  const fetchImpl = opts.fetch ?? globalThis.fetch;
  const res = await fetchImpl(url, { signal: opts.signal, redirect: 'follow' });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
  const h = createHash('md5');
  const total = Number(res.headers.get('content-length') ?? 0);
  let got = 0;
  let lastLog = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      got += chunk.length;
      if (opts.log && Date.now() - lastLog > 2000) {
        lastLog = Date.now();
        opts.log(`  ${path.basename(dest)}: ${(got / 1e6).toFixed(1)}${total ? ` / ${(total / 1e6).toFixed(1)}` : ''} MB`);
      }
      cb(null, chunk);
    },
  });
  await pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream), tap, createWriteStream(dest));
  return h.digest('hex');
}

/** Puts one verified file at dest: kept when already there with the right md5, else downloaded. */
async function obtain(name: string, file: SourceFile, dest: string, opts: FetchOptions): Promise<void> {
  if (await statOrNull(dest)) {
    if ((await md5File(dest)) === file.md5) {
      opts.log?.(`${dest}: present, md5 verified`);
      return;
    }
    opts.log?.(`${dest}: present but its md5 is wrong, downloading again`);
  }
  const part = `${dest}.part`;
  const failures: string[] = [];
  for (const url of file.urls) {
    opts.log?.(`downloading ${url}`);
    try {
      const md5 = await downloadTo(url, part, opts);
      if (md5 !== file.md5) {
        await fsp.rm(part, { force: true });
        throw new DatasetError(
          `${url}: downloaded file has md5 ${md5}, not the published ${file.md5} (corrupt or changed download; ${file.name} for ${name})`,
          dest,
        );
      }
      await fsp.rename(part, dest);
      return;
    } catch (err) {
      await fsp.rm(part, { force: true }).catch(() => undefined);
      if (opts.signal?.aborted) throw err;
      if (err instanceof DatasetError) failures.push(err.message);
      else failures.push(`${url}: ${describe(err)}`);
    }
  }
  throw new DatasetError(
    `could not download ${file.name} for ${name}: ${failures.join('; ')}. ` +
      `Fetching a data set needs internet access; on an offline machine download ${file.urls[0]} elsewhere, ` +
      `check its md5 is ${file.md5}, put it at ${dest} and run again (or point the data set path at an existing copy)`,
    dest,
  );
}

async function isInstalled(target: string, source: DatasetSource): Promise<boolean> {
  if (source.installed.length === 0) return false;
  for (const f of source.installed) if (!(await statOrNull(path.join(target, f)))?.isFile()) return false;
  return true;
}

/** Installs a data set described by `source` under dir (fetchDataset with an explicit source list). */
export async function installDataset(name: string, source: DatasetSource, dir: string, opts: FetchOptions = {}): Promise<FetchedDataset> {
  const target = path.join(dir, source.subdir);
  const result: FetchedDataset = { name, format: source.format, path: target };
  if (await isInstalled(target, source)) {
    opts.log?.(`${name}: already installed in ${target}`);
    return result;
  }
  await fsp.mkdir(source.archive ? dir : target, { recursive: true });
  for (const file of source.files) {
    const dest = path.join(source.archive ? dir : target, file.name);
    await obtain(name, file, dest, opts);
    if (source.archive) {
      opts.log?.(`unpacking ${dest}`);
      await unpackTarGz(dest, dir);
      if (!opts.keepArchive) await fsp.rm(dest, { force: true });
    }
  }
  for (const f of source.installed) {
    const p = path.join(target, f);
    if (!(await statOrNull(p))?.isFile()) throw new DatasetError(`${name}: ${p} is missing after unpacking`, p);
  }
  return result;
}

/**
 * Downloads a data set from its official source into dir (dir/cifar-10-batches-bin,
 * dir/mnist or dir/fashion-mnist), verifying the published md5 of every file. Returns the
 * format and path to put in a DatasetSpec.
 */
export async function fetchDataset(name: FetchableDataset, dir: string, opts: FetchOptions = {}): Promise<FetchedDataset> {
  const source = DATASET_SOURCES[name];
  if (!source) throw new Error(`unknown data set "${String(name)}" (${Object.keys(DATASET_SOURCES).join(', ')})`);
  return installDataset(name, source, dir, opts);
}
