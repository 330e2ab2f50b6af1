// deploy/: the server configs parse (nats-server -t), the manifests and compose file are valid
// YAML whose patchcert command lines parse with the CLI's own flags, and the Dockerfiles copy
// only what exists. (Docker and Kubernetes cannot run here; this is what can be checked.)
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import test from 'ava';
import { parseAllDocuments } from 'yaml';
import { COORDINATOR_FLAGS, WORKER_FLAGS } from '../../cli/distributed-commands.js';
import { layerOf, tsGraph } from '../helpers/import-graph.js';
import { REPO_ROOT } from '../../lab/paths.js';
import { NATS_SERVER_BIN } from '../../lab/nats-server.js';

const DEPLOY = join(REPO_ROOT, 'deploy');
const ENV = {
  PATCHCERT_COORDINATOR_PASSWORD: 'a',
  PATCHCERT_WORKER_PASSWORD: 'b',
  PATCHCERT_OPERATOR_PASSWORD: 'c',
  PATCHCERT_ADMIN_PASSWORD: 'e',
  NATS_SYS_PASSWORD: 'd',
  POD_NAME: 'nats-0',
};

for (const conf of ['nats.conf', 'nats-cluster.conf']) {
  test(`nats-server accepts deploy/nats/${conf}`, (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'patchcert-conf-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    for (const f of readdirSync(join(DEPLOY, 'nats'))) if (f.endsWith('.conf')) copyFileSync(join(DEPLOY, 'nats', f), join(dir, f));
    const out = execFileSync(NATS_SERVER_BIN, ['-t', '-c', join(dir, conf)], { env: { ...process.env, ...ENV }, encoding: 'utf8', stdio: 'pipe' });
    t.regex(out + '', /valid|^$/);
  });
}

function yamlDocs(path: string): Record<string, any>[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  for (const d of docs) if (d.errors.length) throw new Error(`${path}: ${d.errors.map((e) => e.message).join('; ')}`);
  return docs.map((d) => d.toJS()).filter(Boolean);
}

function checkPatchcertArgs(t: any, where: string, args: string[]): void {
  const [cmd, ...rest] = args;
  const options = cmd === 'coordinator' ? COORDINATOR_FLAGS : cmd === 'worker' ? WORKER_FLAGS : undefined;
  if (!options) return;
  t.notThrows(() => parseArgs({ args: rest, options, strict: true, allowPositionals: false }), `${where}: ${args.join(' ')}`);
}

test('Kubernetes manifests: valid YAML, listed in kustomization.yaml, patchcert args parse', (t) => {
  const kust = yamlDocs(join(DEPLOY, 'kustomization.yaml'))[0]!;
  for (const r of kust.resources as string[]) t.true(existsSync(join(DEPLOY, r)), r);
  for (const g of kust.configMapGenerator) for (const f of g.files as string[]) t.true(existsSync(join(DEPLOY, f.split('=').pop()!)), f);
  const kinds: string[] = [];
  for (const r of kust.resources as string[]) {
    for (const doc of yamlDocs(join(DEPLOY, r))) {
      t.truthy(doc.apiVersion, r);
      kinds.push(`${doc.kind}/${doc.metadata?.name}`);
      const pod = doc.spec?.template?.spec;
      for (const c of pod?.containers ?? []) {
        if (String(c.image).startsWith('patchcert')) checkPatchcertArgs(t, `${r} ${doc.metadata.name}`, c.args);
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.secretKeyRef;
          if (ref) t.regex(readFileSync(join(DEPLOY, 'k8s', 'secrets.env.example'), 'utf8'), new RegExp(`^${ref.key}=`, 'm'));
        }
      }
    }
  }
  for (const k of ['StatefulSet/nats', 'Deployment/patchcert-worker-gpu', 'Deployment/patchcert-worker-cpu', 'Job/certify-imagenet']) t.true(kinds.includes(k), k);
  const sts = yamlDocs(join(DEPLOY, 'k8s', 'nats.yaml')).find((d) => d.kind === 'StatefulSet')!;
  t.is(sts.spec.replicas, 3);
  const gpu = yamlDocs(join(DEPLOY, 'k8s', 'worker-gpu.yaml'))[0]!;
  t.is(gpu.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu'], 1);
  // the cluster config's routes name the StatefulSet's pods
  const cluster = readFileSync(join(DEPLOY, 'nats', 'nats-cluster.conf'), 'utf8');
  for (let i = 0; i < 3; i++) t.regex(cluster, new RegExp(`nats://nats-${i}\\.nats\\.patchcert\\.svc\\.cluster\\.local:6222`));
});

test('compose file: valid YAML; patchcert commands parse', (t) => {
  const c = yamlDocs(join(DEPLOY, 'compose.yaml'))[0]!;
  t.deepEqual(Object.keys(c.services).sort(), ['coordinator', 'nats', 'operator', 'worker', 'worker-gpu']);
  checkPatchcertArgs(t, 'worker', c.services.worker.command);
  checkPatchcertArgs(t, 'worker-gpu', c.services['worker-gpu'].command);
  for (const v of c.services.nats.volumes as string[]) {
    const src = v.split(':')[0]!;
    if (src.startsWith('./')) t.true(existsSync(join(DEPLOY, src)), src);
  }
  t.is(c.services.worker.build.dockerfile, 'deploy/docker/worker-cpu.Dockerfile');
});

/** Top folders (and root files) of everything the given files import, directly or not. */
function reachableLayers(start: string[]): Set<string> {
  const g = tsGraph(REPO_ROOT);
  const seen = new Set<string>();
  const todo = [...start];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    todo.push(...(g.get(f) ?? []));
  }
  return new Set([...seen].map(layerOf));
}

test('Dockerfiles copy only what exists, and everything the CLI needs; the images run the CLI', (t) => {
  for (const f of ['worker-cpu.Dockerfile', 'worker-gpu.Dockerfile']) {
    const text = readFileSync(join(DEPLOY, 'docker', f), 'utf8');
    for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(/\s+/)) t.true(existsSync(join(REPO_ROOT, src)), `${f}: COPY ${src}`);
    }
    // and everything the CLI and the library import: every layer reachable from them
    const copied = new Set([...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/)));
    const ignore = readFileSync(join(DEPLOY, 'docker', `${f}.dockerignore`), 'utf8');
    for (const layer of reachableLayers(['cli/main.ts', 'index.ts'])) {
      t.true(copied.has(layer), `${f} does not copy ${layer}, which the CLI imports`);
      t.true(ignore.split('\n').includes(layer.endsWith('.ts') ? `!${layer}` : `!${layer}/`), `${f}.dockerignore leaves out ${layer}`);
    }
    t.regex(text, /ENTRYPOINT \["node", "\/app\/bin\/patchcert\.js"\]/);
    t.true(existsSync(join(DEPLOY, 'docker', `${f}.dockerignore`)));
  }
  const gpu = readFileSync(join(DEPLOY, 'docker', 'worker-gpu.Dockerfile'), 'utf8');
  // the WebGPU route: Vulkan loader in the image, the driver's ICD mounted with the graphics capability
  t.regex(gpu, /PATCHCERT_BACKEND=webgpu/);
  t.regex(gpu, /libvulkan1/);
  t.regex(gpu, /NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics/);
});
