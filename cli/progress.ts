// Progress display: a redrawn bar on a terminal, plain lines every few seconds otherwise.

export interface ProgressState {
  done: number;
  total: number;
  label: string;
  rate?: string;
  etaSeconds?: number;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export class ProgressBar {
  private lastPlain = 0;
  private drawn = false;
  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly plainEveryMs = 5000,
  ) {}

  update(p: ProgressState): void {
    const frac = p.total > 0 ? p.done / p.total : 0;
    const eta = p.etaSeconds !== undefined ? ` ETA ${formatDuration(p.etaSeconds)}` : '';
    const rate = p.rate ? ` ${p.rate}` : '';
    const text = `${p.label} ${p.done}/${p.total} (${(100 * frac).toFixed(1)}%)${rate}${eta}`;
    if (this.stream.isTTY) {
      const width = 24;
      const fill = Math.round(frac * width);
      this.stream.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${text}\u001b[K`);
      this.drawn = true;
    } else {
      const now = Date.now();
      if (now - this.lastPlain >= this.plainEveryMs || p.done === p.total) {
        this.stream.write(`${text}\n`);
        this.lastPlain = now;
      }
    }
  }

  end(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
