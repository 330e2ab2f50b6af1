// Plain records that several layers pass around (the worker produces them, the coordinator and
// the output writer consume them), kept here so that neither side imports the other.

/** One image of a job: its index in the data set, its label and where it comes from. */
export interface DatasetItem {
  index: number;
  label: number;
  /** file path (imagefolder) or "file#record" (binary formats), used in errors and reports */
  source: string;
}

/** An image that could not be certified (corrupt file, …): reported by name, counted nowhere. */
export interface ImageFailure {
  /** position of the image in the job's image list */
  position: number;
  /** index of the image in the data set */
  index: number;
  source: string;
  error: string;
}

/** What computed a unit's counts: results record it since devices can differ in the last bit. */
export interface RunInfo {
  backend: string;
  device: string;
  versions: Record<string, string>;
}

/** Two or more workers returned different counts for one unit. */
export interface UnitAlarm {
  unitId: string;
  /** each worker that voted on the unit, with a digest of its counts */
  votes: { workerId: string; digest: string }[];
  /** 'open' while a further worker recomputes it; 'resolved' when two agreed; 'failed' when none did */
  status: 'open' | 'resolved' | 'failed';
  /** workers whose counts lost (resolved alarms) */
  outvoted?: string[];
}
