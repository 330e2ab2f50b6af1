// What the benchmarks read about processes and the machine: peak and current resident memory
// (/proc/PID/status), CPU seconds used (/proc/PID/stat) and the load average (for the record:
// this machine is shared, so every figure is printed with the load it was taken under).
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

function statusField(pid: number | 'self', field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Peak resident set (VmHWM) in kB. */
export const vmHWMkB = (pid: number | 'self' = 'self'): number => statusField(pid, 'VmHWM');
/** Current resident set (VmRSS) in kB. */
export const vmRSSkB = (pid: number | 'self' = 'self'): number => statusField(pid, 'VmRSS');

/** User + system CPU seconds of a process (and of its waited-for children), 0 once it is gone. */
export function cpuSeconds(pid: number | 'self'): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields 14-17 of stat(5), counted from the state field (3): utime, stime, cutime, cstime
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return 0;
  }
}

export function machineLine(): string {
  const l = loadavg().map((x) => x.toFixed(2)).join(', ');
  return `${new Date().toISOString().slice(0, 19)}Z, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load average ${l}`;
}

export const loadNow = (): string => loadavg()[0]!.toFixed(2);
