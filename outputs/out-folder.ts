// The --out folder of a job, checked and claimed before any work starts: single-node certify and
// the coordinator both call claimOutputFolder, so neither mixes two jobs' files in one folder nor
// finds out only at the end that --out cannot be written.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobSpec } from '../core/index.js';

export interface ClaimedFolder {
  /** job.json was there, for this job: a resume */
  resumed: boolean;
}

function fsMessage(out: string, e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EEXIST':
    case 'ENOTDIR':
      return `cannot create output folder ${out}: it, or a folder above it, is a file`;
    case 'EACCES':
    case 'EPERM':
      return `cannot create output folder ${out}: permission denied`;
    case 'EROFS':
      return `cannot create output folder ${out}: read-only file system`;
    case 'ENOSPC':
      return `cannot write to output folder ${out}: no space left on the device`;
    default:
      return `cannot use output folder ${out}: ${(e as Error).message}`;
  }
}

/**
 * Makes `out` (if needed) and records `job` in out/job.json. Refuses a folder that holds another
 * job's job.json unless `fresh`, and an `out` that is a file. Returns whether the job was there.
 */
export async function claimOutputFolder(out: string, job: JobSpec, fresh = false): Promise<ClaimedFolder> {
  const st = await stat(out).catch(() => undefined);
  if (st && !st.isDirectory()) throw new Error(`--out ${out} is a file, not a folder`);
  try {
    await mkdir(out, { recursive: true });
  } catch (e) {
    throw new Error(fsMessage(out, e));
  }
  const jobPath = join(out, 'job.json');
  let previous: string | undefined;
  try {
    previous = await readFile(jobPath, 'utf8');
  } catch {
    previous = undefined;
  }
  if (previous !== undefined && !fresh) {
    let prevId: string;
    try {
      prevId = String((JSON.parse(previous) as { jobId?: unknown }).jobId);
    } catch {
      throw new Error(`output folder ${out} has a job.json that is not JSON; use another --out or --fresh`);
    }
    if (prevId !== job.jobId) {
      throw new Error(`output folder ${out} holds a different job (${prevId}, this one is ${job.jobId}); use another --out or --fresh`);
    }
    return { resumed: true };
  }
  try {
    await writeFile(jobPath, JSON.stringify(job, null, 2) + '\n');
  } catch (e) {
    throw new Error(fsMessage(out, e));
  }
  return { resumed: false };
}
