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
