// Reads back every result message of a job (run the coordinator with keepResults).
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { RESULTS_STREAM, jobResultsSubjects } from '../../cluster/layout.js';
import { type ResultBody, decodeResult } from '../../proto/index.js';

export async function readJobResults(nc: NatsConnection, jobId: string): Promise<ResultBody[]> {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const total = (await jsm.streams.info(RESULTS_STREAM, { subjects_filter: jobResultsSubjects(jobId) })).state.messages;
  const c = await js.consumers.get(RESULTS_STREAM, { filter_subjects: jobResultsSubjects(jobId) });
  const out: ResultBody[] = [];
  while (out.length < total) {
    const m = await c.next({ expires: 2000 });
    if (!m) break;
    try {
      out.push(decodeResult(m.data, m.subject));
    } catch {
      // malformed: not part of what the tests inspect
    }
  }
  return out;
}
