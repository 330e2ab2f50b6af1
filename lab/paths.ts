// Paths of the repository and its fixtures, from compiled code in dist/lab/…
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURE_MODELS = join(REPO_ROOT, 'test', 'fixtures', 'models');
export const SHARED_DATASETS = resolve(REPO_ROOT, '..', 'shared', 'datasets');
export const CLI = join(REPO_ROOT, 'bin', 'patchcert.js');
