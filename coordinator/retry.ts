// Retrying NATS operations through server restarts and leader elections, until told to stop.
export const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function isNotFound(e: unknown): boolean {
  return /not found/i.test(errText(e)) || (e as { code?: string }).code === '404';
}

export async function retrying<T>(what: string, fn: () => Promise<T>, stop: () => boolean, log?: (s: string) => void): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (stop()) throw e;
      if (i % 10 === 3) log?.(`${what}: ${errText(e)} (retrying)`);
      await sleep(Math.min(2000, 100 * 2 ** Math.min(i, 5)));
    }
  }
}
