// One owner thread per process for onnxruntime's WebGPU device. onnxruntime-node keeps one
// WebGPU context per process: two threads creating sessions at once segfault, overlapping runs from
// two threads fail ("Command encoding already finished"). Within the owning thread every create,
// run and release goes through one queue; another thread of the same process is refused with a
// clear error instead of a crash. Threads of a process share no JS state, so the claim is a file
// named for the process (pid and start time, so a stale file of a dead process does not count).
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';

function processStart(): string {
  try {
    // field 22 of /proc/self/stat: start time in clock ticks since boot (same for every thread)
    const stat = readFileSync('/proc/self/stat', 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '0';
  } catch {
    return String(Math.round(Date.now() - process.uptime() * 1000));
  }
}

let claimed: string | undefined;

/** Claims the process's GPU device for this thread (idempotent); throws if another thread has it. */
export function claimGpuDevice(provider: string): void {
  if (claimed) return;
  const file = join(tmpdir(), `patchcert-${provider}-${process.pid}-${processStart()}.owner`);
  try {
    const fd = openSync(file, 'wx');
    writeSync(fd, String(threadId));
    closeSync(fd);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const owner = readFileSync(file, 'utf8').trim();
    if (owner !== String(threadId)) {
      throw new Error(
        `the ${provider} device of process ${process.pid} is owned by thread ${owner}, not thread ${threadId}: onnxruntime-node has one ` +
          `WebGPU context per process and crashes when two threads use it; create and run ${provider} sessions from one thread (or another process)`,
      );
    }
  }
  claimed = file;
  process.once('exit', () => rmSync(file, { force: true }));
}

let tail: Promise<unknown> = Promise.resolve();

/** Runs `fn` on the device after everything queued before it (one device call at a time). */
export function onDevice<T>(fn: () => Promise<T> | T): Promise<T> {
  const run = tail.then(fn);
  tail = run.catch(() => undefined);
  return run;
}
