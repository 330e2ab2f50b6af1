// Encoding and validated decoding of every message that crosses NATS (schema: proto/patchcert.proto).
//
// The schema is loaded at runtime from the .proto file shipped in the package (proto/ sits next to
// dist/ in the package root). Decoding never trusts the wire: a message that does not parse, has an
// unknown version, or holds out-of-range values raises MalformedMessageError whose text is
// "malformed message on SUBJECT: ..."; callers report such messages and count nothing from them.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { type UnitRange, parseUnitId, unitId } from '../core/index.js';

/** The one wire version this build reads and writes. */
export const PROTO_VERSION = 1;

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** A worker id is one NATS subject token (results subjects end with it) and a NATS user name. */
export const WORKER_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Longest free text (error messages, sources) kept from or put on the wire. */
export const MAX_TEXT = 4096;

export class MalformedMessageError extends Error {
  constructor(readonly subject: string, readonly detail: string) {
    super(`malformed message on ${subject}: ${detail}`);
    this.name = 'MalformedMessageError';
  }
}

// ------------------------------------------------------------------ schema

function protoPath(): string {
  // dist/proto/index.js -> <root>/proto/patchcert.proto; also works when run from the sources.
  for (const rel of ['../../proto/patchcert.proto', './patchcert.proto']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('proto/patchcert.proto not found next to the patchcert package (is the proto/ folder installed?)');
}

let root: protobuf.Root | undefined;
function type(name: string): protobuf.Type {
  root ??= protobuf.loadSync(protoPath());
  return root.lookupType(`patchcert.v1.${name}`);
}

const CONVERT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: true, arrays: true, objects: true, oneofs: true };

function encodeAs(name: string, obj: Record<string, unknown>): Uint8Array {
  const t = type(name);
  const err = t.verify(obj);
  if (err) throw new Error(`cannot encode ${name}: ${err}`);
  return t.encode(t.fromObject(obj)).finish();
}

function decodeAs(name: string, data: Uint8Array, subject: string): Record<string, any> {
  const t = type(name);
  let msg: protobuf.Message;
  try {
    msg = t.decode(data);
  } catch (e) {
    throw new MalformedMessageError(subject, `not a valid ${name} (${e instanceof Error ? e.message : String(e)})`);
  }
  return t.toObject(msg, CONVERT);
}

// ------------------------------------------------------------------ checks

function bad(subject: string, what: string): never {
  throw new MalformedMessageError(subject, what);
}

function checkVersion(subject: string, name: string, v: unknown): void {
  if (v !== PROTO_VERSION) bad(subject, `${name} version ${String(v)} is not supported (this build reads version ${PROTO_VERSION})`);
}

function checkJobId(subject: string, id: unknown, expected?: string): string {
  if (typeof id !== 'string' || !JOB_ID.test(id)) bad(subject, `job id ${JSON.stringify(id)} is not a valid job id`);
  if (expected !== undefined && id !== expected) bad(subject, `job id "${id}" does not match the subject's job "${expected}"`);
  return id;
}

function checkWorkerId(subject: string, id: unknown): string {
  if (typeof id !== 'string' || !WORKER_ID.test(id)) bad(subject, `worker id ${JSON.stringify(id)} is not valid`);
  return id;
}

function checkText(subject: string, field: string, s: unknown, max = MAX_TEXT): string {
  if (typeof s !== 'string') bad(subject, `${field} is not a string`);
  if (s.length > max) bad(subject, `${field} is longer than ${max} characters`);
  return s;
}

function checkNumber(subject: string, field: string, v: unknown, min = 0): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) bad(subject, `${field} must be a finite number >= ${min}, got ${String(v)}`);
  return v;
}

/** Largest image position / ablation index a message may name (far above any real job). */
export const MAX_INDEX = 2 ** 31 - 1;

function checkRange(subject: string, r: unknown): UnitRange {
  if (typeof r !== 'object' || r === null) bad(subject, 'range missing');
  const { imgStart, imgEnd, ablStart, ablEnd } = r as Record<string, unknown>;
  for (const [k, v] of Object.entries({ imgStart, imgEnd, ablStart, ablEnd })) {
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_INDEX) bad(subject, `range.${k} out of range: ${String(v)}`);
  }
  const out = { imgStart: imgStart as number, imgEnd: imgEnd as number, ablStart: ablStart as number, ablEnd: ablEnd as number };
  if (out.imgEnd <= out.imgStart || out.ablEnd <= out.ablStart) bad(subject, `empty range ${unitId(out)}`);
  return out;
}

function checkUnitId(subject: string, id: unknown, range: UnitRange): string {
  if (typeof id !== 'string') bad(subject, 'unit id missing');
  let parsed: UnitRange;
  try {
    parsed = parseUnitId(id);
  } catch (e) {
    bad(subject, e instanceof Error ? e.message : String(e));
  }
  if (unitId(parsed) !== id || id !== unitId(range)) bad(subject, `unit id "${id}" does not match its range ${unitId(range)}`);
  return id;
}

function checkSha(subject: string, field: string, s: unknown, optional = false): string {
  if (optional && s === '') return '';
  if (typeof s !== 'string' || !SHA256.test(s)) bad(subject, `${field} must be 64 lowercase hex digits`);
  return s;
}

/**
 * Decodes what was just encoded with the receiver's checks, so nothing is ever sent that a
 * receiver would refuse (protobuf itself would wrap -1 into a uint32 without a word).
 */
function selfChecked(name: string, data: Uint8Array, check: (d: Uint8Array, subject: string) => unknown): Uint8Array {
  try {
    check(data, 'outgoing message');
  } catch (e) {
    throw new Error(`cannot encode ${name}: ${e instanceof MalformedMessageError ? e.detail : String(e)}`);
  }
  return data;
}

function clip(s: string, max = MAX_TEXT): string {
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

/**
 * Job id named by a patchcert subject such as patchcert.work.<jobId> or
 * patchcert.results.<jobId>.<workerId>, or undefined.
 */
export function jobIdOfSubject(subject: string): string | undefined {
  const parts = subject.split('.');
  const id = parts[2];
  const tokens = parts[1] === 'results' ? 4 : 3;
  return parts.length === tokens && parts[0] === 'patchcert' && id !== undefined && JOB_ID.test(id) ? id : undefined;
}

/** The sender named by a results subject patchcert.results.<jobId>.<workerId>, or undefined. */
export function workerIdOfSubject(subject: string): string | undefined {
  const parts = subject.split('.');
  const id = parts[3];
  return parts.length === 4 && parts[0] === 'patchcert' && parts[1] === 'results' && id !== undefined && WORKER_ID.test(id) ? id : undefined;
}

/** A result names its worker; it must be the one whose subject (and so account) carried it. */
function checkSender(subject: string, workerId: string): string {
  const sender = workerIdOfSubject(subject);
  if (sender !== undefined && sender !== workerId) {
    bad(subject, `sender mismatch: published on worker ${sender}'s subject, the message names worker ${workerId}`);
  }
  return workerId;
}

// ------------------------------------------------------------------ JobSpec

export interface JobSpecMessage {
  jobId: string;
  specJson: string;
  maxAttempts: number;
  unitImages: number;
  unitAblations: number;
  unitsTotal: number;
  createdAtMs: number;
  /** fraction of units computed by two distinct workers (0 = none, 1 = all) */
  replicate?: number;
}

function checkFraction(subject: string, field: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) bad(subject, `${field} must be a fraction in [0, 1], got ${String(v)}`);
  return v;
}

export function encodeJobSpec(m: JobSpecMessage): Uint8Array {
  return encodeAs('JobSpec', { version: PROTO_VERSION, ...m });
}

/** Decodes a stored job spec; the JSON inside is checked by core validateJob by the caller. */
export function decodeJobSpec(data: Uint8Array, subject: string): JobSpecMessage {
  const o = decodeAs('JobSpec', data, subject);
  checkVersion(subject, 'JobSpec', o.version);
  const jobId = checkJobId(subject, o.jobId);
  const specJson = checkText(subject, 'spec_json', o.specJson, 16 * 1024 * 1024);
  for (const k of ['maxAttempts', 'unitImages', 'unitAblations', 'unitsTotal']) {
    if (!Number.isInteger(o[k]) || o[k] < 1) bad(subject, `${k} must be a positive integer, got ${String(o[k])}`);
  }
  return {
    jobId,
    specJson,
    maxAttempts: o.maxAttempts,
    unitImages: o.unitImages,
    unitAblations: o.unitAblations,
    unitsTotal: o.unitsTotal,
    createdAtMs: checkNumber(subject, 'created_at_ms', o.createdAtMs),
    replicate: checkFraction(subject, 'replicate', o.replicate ?? 0),
  };
}

// ------------------------------------------------------------------ WorkUnit

export interface WorkUnitMessage {
  jobId: string;
  unitId: string;
  range: UnitRange;
  attempt: number;
  maxAttempts: number;
  modelSha256: string;
  /** workers that must leave this offer to others */
  excludeWorkers?: string[];
  /** 0 for a unit's first offer, then one per re-offer */
  round?: number;
}

export function encodeWorkUnit(m: WorkUnitMessage): Uint8Array {
  return selfChecked('WorkUnit', encodeAs('WorkUnit', { version: PROTO_VERSION, ...m }), (d, s) => decodeWorkUnit(d, s));
}

export function decodeWorkUnit(data: Uint8Array, subject: string, expectedJobId?: string): WorkUnitMessage {
  const o = decodeAs('WorkUnit', data, subject);
  checkVersion(subject, 'WorkUnit', o.version);
  const jobId = checkJobId(subject, o.jobId, expectedJobId);
  const range = checkRange(subject, o.range);
  const id = checkUnitId(subject, o.unitId, range);
  if (!Number.isInteger(o.attempt) || o.attempt < 1 || o.attempt > 1000) bad(subject, `attempt out of range: ${String(o.attempt)}`);
  if (!Number.isInteger(o.maxAttempts) || o.maxAttempts < 1 || o.maxAttempts > 1000) bad(subject, `max_attempts out of range: ${String(o.maxAttempts)}`);
  const excl = o.excludeWorkers as unknown[];
  if (excl.length > 64) bad(subject, `unit ${id} excludes ${excl.length} workers (at most 64)`);
  const excludeWorkers = excl.map((w) => checkWorkerId(subject, w));
  if (!Number.isInteger(o.round) || o.round < 0 || o.round > 1_000_000) bad(subject, `round out of range: ${String(o.round)}`);
  return {
    jobId,
    unitId: id,
    range,
    attempt: o.attempt,
    maxAttempts: o.maxAttempts,
    modelSha256: checkSha(subject, 'model_sha256', o.modelSha256),
    excludeWorkers,
    round: o.round,
  };
}

// ------------------------------------------------------------------ results

export interface ImageFailureMessage {
  position: number;
  index: number;
  source: string;
  error: string;
}

export interface PartialVotesMessage {
  jobId: string;
  unitId: string;
  range: UnitRange;
  /** per vote rule, (imgEnd - imgStart) x numClasses counts */
  counts: Int32Array[];
  failures: ImageFailureMessage[];
  workerId: string;
  backend: string;
  device: string;
  versions: Record<string, string>;
  timings: { preprocessMs: number; inferenceMs: number; totalMs: number };
  attempt: number;
  modelSha256: string;
  /** the offer (WorkUnit round) this answers; 0 when absent */
  round?: number;
}

export type UnitFailureKind = 'error' | 'lost' | 'model' | 'malformed' | 'job';
const FAILURE_KINDS: readonly string[] = ['error', 'lost', 'model', 'malformed', 'job'];

export interface UnitFailureMessage {
  jobId: string;
  /** '' when the failing work message was too malformed to name its unit */
  unitId: string;
  range?: UnitRange;
  error: string;
  workerId: string;
  attempt: number;
  kind: UnitFailureKind;
  /** the offer (WorkUnit round) this answers; 0 when absent */
  round?: number;
}

export type ResultBody = { type: 'votes'; votes: PartialVotesMessage } | { type: 'failure'; failure: UnitFailureMessage };

export function encodePartialVotes(m: PartialVotesMessage): Uint8Array {
  return selfChecked('PartialVotes', encodeAs('ResultMessage', {
    version: PROTO_VERSION,
    votes: {
      version: PROTO_VERSION,
      jobId: m.jobId,
      unitId: m.unitId,
      range: m.range,
      rules: m.counts.map((c) => ({ counts: Array.from(c) })),
      failures: m.failures.map((f) => ({ ...f, source: clip(f.source), error: clip(f.error) })),
      workerId: m.workerId,
      backend: clip(m.backend, 256),
      device: clip(m.device, 256),
      versions: m.versions,
      timings: m.timings,
      attempt: m.attempt,
      modelSha256: m.modelSha256,
      round: m.round ?? 0,
    },
  }), (d, s) => decodeResult(d, s));
}

export function encodeUnitFailure(m: UnitFailureMessage): Uint8Array {
  const failure: Record<string, unknown> = { version: PROTO_VERSION, ...m, error: clip(m.error), round: m.round ?? 0 };
  if (m.range === undefined) delete failure.range;
  return selfChecked('UnitFailure', encodeAs('ResultMessage', { version: PROTO_VERSION, failure }), (d, s) => decodeResult(d, s));
}

/** Decodes a results-stream message; `expectedJobId` is the job named by its subject. */
export function decodeResult(data: Uint8Array, subject: string, expectedJobId?: string): ResultBody {
  const o = decodeAs('ResultMessage', data, subject);
  checkVersion(subject, 'ResultMessage', o.version);
  if (o.body === 'votes' && o.votes) {
    const v = o.votes;
    checkVersion(subject, 'PartialVotes', v.version);
    const jobId = checkJobId(subject, v.jobId, expectedJobId);
    const range = checkRange(subject, v.range);
    const id = checkUnitId(subject, v.unitId, range);
    const rules = v.rules as { counts: number[] }[];
    if (rules.length === 0) bad(subject, `unit ${id} carries no vote counts`);
    const span = range.ablEnd - range.ablStart;
    const counts = rules.map((r, ri) => {
      const a = Int32Array.from(r.counts);
      for (let j = 0; j < a.length; j++) {
        if (a[j]! < 0 || a[j]! > span) bad(subject, `unit ${id} rule ${ri} has an impossible count ${a[j]} (span ${span} ablations)`);
      }
      return a;
    });
    const failures = (v.failures as Record<string, unknown>[]).map((f) => {
      const position = f.position as number;
      if (position < range.imgStart || position >= range.imgEnd) bad(subject, `unit ${id} reports a failed image at position ${position} outside the unit`);
      return { position, index: f.index as number, source: checkText(subject, 'failure.source', f.source), error: checkText(subject, 'failure.error', f.error) };
    });
    const versions: Record<string, string> = {};
    for (const [k, val] of Object.entries(v.versions as Record<string, string>)) versions[checkText(subject, 'versions key', k, 128)] = checkText(subject, 'versions value', val, 256);
    const t = v.timings ?? {};
    return {
      type: 'votes',
      votes: {
        jobId,
        unitId: id,
        range,
        counts,
        failures,
        workerId: checkSender(subject, checkWorkerId(subject, v.workerId)),
        backend: checkText(subject, 'backend', v.backend, 256),
        device: checkText(subject, 'device', v.device, 256),
        versions,
        timings: {
          preprocessMs: checkNumber(subject, 'timings.preprocess_ms', t.preprocessMs ?? 0),
          inferenceMs: checkNumber(subject, 'timings.inference_ms', t.inferenceMs ?? 0),
          totalMs: checkNumber(subject, 'timings.total_ms', t.totalMs ?? 0),
        },
        attempt: checkNumber(subject, 'attempt', v.attempt, 1),
        modelSha256: checkSha(subject, 'model_sha256', v.modelSha256),
        round: checkNumber(subject, 'round', v.round ?? 0),
      },
    };
  }
  if (o.body === 'failure' && o.failure) {
    const f = o.failure;
    checkVersion(subject, 'UnitFailure', f.version);
    const jobId = checkJobId(subject, f.jobId, expectedJobId);
    let range: UnitRange | undefined;
    let id = '';
    if (f.unitId !== '') {
      range = checkRange(subject, f.range);
      id = checkUnitId(subject, f.unitId, range);
    }
    if (!FAILURE_KINDS.includes(f.kind)) bad(subject, `unknown failure kind ${JSON.stringify(f.kind)}`);
    const out: UnitFailureMessage = {
      jobId,
      unitId: id,
      error: checkText(subject, 'error', f.error),
      workerId: checkSender(subject, checkWorkerId(subject, f.workerId)),
      attempt: checkNumber(subject, 'attempt', f.attempt),
      kind: f.kind as UnitFailureKind,
      round: checkNumber(subject, 'round', f.round ?? 0),
    };
    if (range) out.range = range;
    return { type: 'failure', failure: out };
  }
  bad(subject, 'result message carries neither votes nor a failure');
}

// ------------------------------------------------------------------ heartbeat, progress, cancel

export interface HeartbeatMessage {
  workerId: string;
  host: string;
  backend: string;
  device: string;
  concurrency: number;
  inFlight: string[];
  unitsDone: number;
  unitsFailed: number;
  startedAtMs: number;
  sentAtMs: number;
  state: 'running' | 'draining';
}

export function encodeHeartbeat(m: HeartbeatMessage): Uint8Array {
  return encodeAs('Heartbeat', { version: PROTO_VERSION, ...m, backend: clip(m.backend, 256), device: clip(m.device, 256), host: clip(m.host, 256) });
}

export function decodeHeartbeat(data: Uint8Array, subject: string): HeartbeatMessage {
  const o = decodeAs('Heartbeat', data, subject);
  checkVersion(subject, 'Heartbeat', o.version);
  if (o.state !== 'running' && o.state !== 'draining') bad(subject, `unknown worker state ${JSON.stringify(o.state)}`);
  if ((o.inFlight as unknown[]).length > 10000) bad(subject, 'too many units in flight');
  return {
    workerId: checkWorkerId(subject, o.workerId),
    host: checkText(subject, 'host', o.host, 256),
    backend: checkText(subject, 'backend', o.backend, 256),
    device: checkText(subject, 'device', o.device, 256),
    concurrency: o.concurrency,
    inFlight: (o.inFlight as unknown[]).map((s) => checkText(subject, 'in_flight', s, 256)),
    unitsDone: o.unitsDone,
    unitsFailed: o.unitsFailed,
    startedAtMs: checkNumber(subject, 'started_at_ms', o.startedAtMs),
    sentAtMs: checkNumber(subject, 'sent_at_ms', o.sentAtMs),
    state: o.state,
  };
}

export interface ProgressMessage {
  jobId: string;
  state: string;
  unitsTotal: number;
  unitsDone: number;
  unitsFailed: number;
  imagesTotal: number;
  imagesComplete: number;
  ablationsDone: number;
  ablationsTotal: number;
  ablationsPerSecond: number;
  /** negative when unknown */
  etaSeconds: number;
  liveWorkers: number;
  elapsedSeconds: number;
  sentAtMs: number;
}

export function encodeProgress(m: ProgressMessage): Uint8Array {
  return encodeAs('Progress', { version: PROTO_VERSION, ...m });
}

export function decodeProgress(data: Uint8Array, subject: string): ProgressMessage {
  const o = decodeAs('Progress', data, subject);
  checkVersion(subject, 'Progress', o.version);
  checkJobId(subject, o.jobId);
  for (const k of ['ablationsDone', 'ablationsTotal', 'ablationsPerSecond', 'elapsedSeconds', 'sentAtMs']) checkNumber(subject, k, o[k]);
  checkNumber(subject, 'etaSeconds', o.etaSeconds, -Infinity);
  const { version: _v, ...rest } = o;
  return rest as ProgressMessage;
}

export interface CancelMessage {
  jobId: string;
  reason: string;
  requestedAtMs: number;
}

export function encodeCancel(m: CancelMessage): Uint8Array {
  return encodeAs('Cancel', { version: PROTO_VERSION, ...m, reason: clip(m.reason) });
}

export function decodeCancel(data: Uint8Array, subject: string, expectedJobId?: string): CancelMessage {
  const o = decodeAs('Cancel', data, subject);
  checkVersion(subject, 'Cancel', o.version);
  return {
    jobId: checkJobId(subject, o.jobId, expectedJobId),
    reason: checkText(subject, 'reason', o.reason),
    requestedAtMs: checkNumber(subject, 'requested_at_ms', o.requestedAtMs),
  };
}
