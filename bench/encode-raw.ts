// Raw encoding throughput of the preprocessing side: encoded ablations per second on one thread
// (core/encoding.ts encodeAblation, what each piscina prep thread runs for every forward pass).
// At 224x224 an encoded levine6 ablation is 301,056 floats, so a fast backend can outrun the
// encoder; this says how many prep threads a worker needs. Not a test. Usage:
//   node dist/bench/encode-raw.js [--size 224] [--channels 3] [--scheme column] [--band 25]
//                                 [--encoding levine6] [--layout nchw] [--seconds 3]
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { type EncodeSpec, type Encoding, type Layout, type SchemeKind, ablationCount, encodeAblation, encodedSize } from '../core/index.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '224' },
    channels: { type: 'string', default: '3' },
    scheme: { type: 'string', default: 'column' },
    band: { type: 'string', default: '25' },
    encoding: { type: 'string', default: 'levine6' },
    layout: { type: 'string', default: 'nchw' },
    seconds: { type: 'string', default: '3' },
  },
});
const side = Number(values.size);
const spec: EncodeSpec = {
  scheme: { kind: values.scheme as SchemeKind, size: Number(values.band), stride: 1 },
  geom: { height: side, width: side },
  channels: Number(values.channels),
  encoding: values.encoding as Encoding,
  layout: values.layout as Layout,
};
const K = ablationCount(spec.scheme, spec.geom);
const size = encodedSize(spec);
const image = new Float32Array(side * side * spec.channels);
for (let i = 0; i < image.length; i++) image[i] = (i % 251) / 255;
const out = new Float32Array(size);
for (let k = 0; k < 8; k++) encodeAblation(spec, image, k % K, out, 0); // warm-up (JIT)
let n = 0;
const t0 = performance.now();
let elapsed = 0;
while (elapsed < Number(values.seconds) * 1000) {
  encodeAblation(spec, image, n % K, out, 0);
  n++;
  if (n % 16 === 0) elapsed = performance.now() - t0;
}
elapsed = performance.now() - t0;
const rate = (n * 1000) / elapsed;
console.log(`host: ${cpus()[0]?.model ?? 'cpu'} x ${cpus().length}, node ${process.versions.node}`);
console.log(
  `${side}x${side}x${spec.channels} ${spec.scheme.kind} s=${spec.scheme.size} ${spec.encoding} ${spec.layout}: ${K} ablations/image, ` +
    `${size} floats (${((size * 4) / 2 ** 20).toFixed(2)} MiB) each; ${rate.toFixed(0)} encoded ablations/s on one thread ` +
    `(${(elapsed / n).toFixed(3)} ms each, ${((rate * size * 4) / 2 ** 30).toFixed(2)} GiB/s written)`,
);
