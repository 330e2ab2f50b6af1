// Whether the webgpu backend can run here, decided once per test process. Uses the lavapipe
// driver that .ci/lavapipe.sh unpacks into .vk/ when no Vulkan driver was chosen by the
// environment. Tests of the webgpu backend skip, with the reason, only when no adapter works;
// with PATCHCERT_REQUIRE_VULKAN=1 (set by .ci/run) they fail instead.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext, TestFn } from 'ava';
import { probeWebgpuAdapter } from '../../worker/backends/webgpu-adapter.js';
import type { GpuAdapterInfo } from '../../worker/backends/webgpu-adapter.js';
import { REPO_ROOT } from '../../lab/paths.js';

const vk = join(REPO_ROOT, '.vk');
if (!process.env.VK_ICD_FILENAMES && existsSync(join(vk, 'lvp_icd.json'))) {
  // set before onnxruntime loads libvulkan; child processes (workers) inherit it
  process.env.VK_ICD_FILENAMES = join(vk, 'lvp_icd.json');
  process.env.VK_DRIVER_FILES = process.env.VK_ICD_FILENAMES;
}
if (!process.env.XDG_RUNTIME_DIR) {
  const xdg = join(vk, 'xdg');
  mkdirSync(xdg, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = xdg;
}

export const REQUIRE_VULKAN = process.env.PATCHCERT_REQUIRE_VULKAN === '1';

let ready: Promise<{ adapter?: GpuAdapterInfo; skip?: string }> | undefined;

/** The adapter the webgpu backend will use, or why there is none. */
export function webgpuAdapter(): Promise<{ adapter?: GpuAdapterInfo; skip?: string }> {
  ready ??= probeWebgpuAdapter().then((p) =>
    p.adapter ? { adapter: p.adapter } : { skip: `no Vulkan adapter for the webgpu backend (${p.error ?? 'none'}); bash .ci/lavapipe.sh installs a software one` },
  );
  return ready;
}

/** Registers a webgpu test; without an adapter it is registered as skipped, the reason in its title (a failure in CI). */
export async function gpuTestFn(test: TestFn): Promise<(title: string, fn: (t: ExecutionContext, adapter: GpuAdapterInfo) => Promise<void>) => void> {
  const { adapter, skip } = await webgpuAdapter();
  return (title, fn) => {
    if (adapter) test.serial(title, (t) => fn(t, adapter));
    else if (REQUIRE_VULKAN) test.serial(title, (t) => t.fail(`PATCHCERT_REQUIRE_VULKAN=1 but ${skip}`));
    else test.skip(`${title} [skipped: ${skip}]`, () => undefined);
  };
}
