// The numeric options of a job, with their bounds, in one place: the CLI flags, the job-file reader
// and the job-spec check (validateJob, which workers run on every job) all check through here, so a
// value refused in one is refused in all, with the same words.

export interface NumericBound {
  min: number;
  /** largest value allowed (default: none) */
  max?: number;
  /** what it counts, for the message */
  what: string;
}

export const NUMERIC_OPTIONS = {
  offset: { min: 0, what: 'images to skip' },
  limit: { min: 1, what: 'images' },
  resize: { min: 1, max: 16384, what: 'pixels' },
  crop: { min: 1, max: 16384, what: 'pixels' },
  size: { min: 1, what: 'pixels (ablation band or block side)' },
  stride: { min: 1, what: 'pixels between ablation positions' },
  'max-patch': { min: 1, what: 'pixels' },
  threads: { min: 1, max: 1024, what: 'threads' },
  'prep-threads': { min: 1, max: 1024, what: 'threads' },
  'tile-images': { min: 1, max: 1 << 20, what: 'images per batch' },
  'tile-ablations': { min: 1, max: 1 << 20, what: 'ablations per batch' },
  'unit-images': { min: 1, what: 'images per unit' },
  'unit-ablations': { min: 1, what: 'ablations per unit' },
  'unit-passes': { min: 1, what: 'forward passes per unit' },
  'max-attempts': { min: 1, max: 100, what: 'attempts' },
  replicas: { min: 1, max: 5, what: 'stream replicas' },
  concurrency: { min: 1, max: 1024, what: 'units in flight' },
  'max-failures-in-a-row': { min: 0, what: 'units (0: never stop)' },
} as const satisfies Record<string, NumericBound>;

export type NumericOption = keyof typeof NUMERIC_OPTIONS;

/**
 * The integer value of option `name`, or an error naming it, its bounds and where it came from
 * (`from`: "--stride", "job file x.yaml", "job spec"...). undefined passes through.
 */
export function checkNumericOption(name: NumericOption, value: unknown, from = `--${name}`): number | undefined {
  if (value === undefined) return undefined;
  const b: NumericBound = NUMERIC_OPTIONS[name];
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : typeof value === 'number' ? value : NaN;
  const range = b.max !== undefined ? `${b.min} to ${b.max}` : `at least ${b.min}`;
  if (!Number.isInteger(n) || n < b.min || (b.max !== undefined && n > b.max)) {
    throw new Error(`${from} must be an integer, ${range} (${b.what}), got ${JSON.stringify(value)}`);
  }
  return n;
}
