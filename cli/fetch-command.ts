// `patchcert fetch NAME`: downloads a data set from its official source (md5-checked) into a folder
// and says which --data/--format certify it with. A thin wrapper over fetchDataset.
import { resolve } from 'node:path';
import { DATASET_SOURCES, type FetchableDataset, fetchDataset } from '../worker/datasets/index.js';

export const FETCH_USAGE = `usage: patchcert fetch NAME [--dir DIR] [--keep-archive]

Downloads NAME (${Object.keys(DATASET_SOURCES).join(', ')}) from its official source into DIR
(default: data), checks every file against the published md5, and unpacks it. Files already in
place with the right md5 are not downloaded again: on a machine without internet, copy the
official files into DIR/<name folder> by hand and run this to verify them.
`;

export async function fetchCommand(args: string[]): Promise<number> {
  let name: string | undefined;
  let dir = 'data';
  let keepArchive = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(FETCH_USAGE);
      return 0;
    } else if (a === '--dir') {
      const v = args[++i];
      if (v === undefined) return usageError('--dir needs a folder');
      dir = v;
    } else if (a === '--keep-archive') keepArchive = true;
    else if (a.startsWith('-')) return usageError(`unknown option ${a}`);
    else if (name === undefined) name = a;
    else return usageError(`unexpected argument "${a}"`);
  }
  if (name === undefined) return usageError('which data set? (NAME missing)');
  if (!Object.hasOwn(DATASET_SOURCES, name)) {
    return usageError(`unknown data set "${name}" (${Object.keys(DATASET_SOURCES).join(', ')})`);
  }
  try {
    const got = await fetchDataset(name as FetchableDataset, resolve(dir), {
      keepArchive,
      log: (m) => process.stderr.write(m + '\n'),
    });
    process.stdout.write(`${got.name}: ${got.format} data set in ${got.path}\n`);
    process.stdout.write(`certify it with: patchcert certify --data ${got.path} --format ${got.format} --model ...\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`patchcert fetch ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}

function usageError(message: string): number {
  process.stderr.write(`patchcert fetch: ${message}\n\n${FETCH_USAGE}`);
  return 2;
}
