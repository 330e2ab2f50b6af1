// Publishing a job's units to the work queue, with message ids so a re-published unit is stored once.
import type { JetStreamClient } from '@nats-io/jetstream';
import type { JobSpec, WorkUnit } from '../core/index.js';
import { encodeWorkUnit } from '../proto/index.js';
import { PUBLISH_TIMEOUT_MS, unitMsgId, workSubject } from '../cluster/layout.js';
import { retrying } from './retry.js';

/** The WorkUnit of one offer of a unit: first offers have round 0 and exclude nobody. */
function encodeOffer(job: JobSpec, u: WorkUnit, maxAttempts: number, round: number, excludeWorkers: readonly string[] = []): Uint8Array {
  return encodeWorkUnit({
    jobId: job.jobId,
    unitId: u.id,
    range: { imgStart: u.imgStart, imgEnd: u.imgEnd, ablStart: u.ablStart, ablEnd: u.ablEnd },
    attempt: 1,
    maxAttempts,
    modelSha256: job.model.sha256,
    excludeWorkers: [...excludeWorkers],
    round,
  });
}

export async function publishUnits(
  js: JetStreamClient,
  job: JobSpec,
  units: readonly WorkUnit[],
  maxAttempts: number,
  stop: () => boolean,
  log: (s: string) => void,
  round = 0,
): Promise<number> {
  const subject = workSubject(job.jobId);
  let n = 0;
  const BATCH = 256;
  for (let i = 0; i < units.length && !stop(); i += BATCH) {
    await Promise.all(
      units.slice(i, i + BATCH).map((u) => {
        const data = encodeOffer(job, u, maxAttempts, round);
        return retrying(`publishing unit ${u.id}`, () => js.publish(subject, data, { msgID: unitMsgId(job.jobId, u.id, round), timeout: PUBLISH_TIMEOUT_MS }), stop, log).then(() => {
          n++;
        });
      }),
    );
  }
  return n;
}

/**
 * One more offer of a unit (a replica, a second opinion on a dispute, a retry elsewhere), in a
 * round of its own; the workers in `exclude` leave it to others.
 */
export async function publishReoffer(
  js: JetStreamClient,
  job: JobSpec,
  u: WorkUnit,
  maxAttempts: number,
  round: number,
  exclude: readonly string[],
  stop: () => boolean,
  log: (s: string) => void,
): Promise<void> {
  const data = encodeOffer(job, u, maxAttempts, round, exclude.slice(0, 64));
  await retrying(`offering unit ${u.id} again`, () => js.publish(workSubject(job.jobId), data, { msgID: unitMsgId(job.jobId, u.id, round), timeout: PUBLISH_TIMEOUT_MS }), stop, log);
}
