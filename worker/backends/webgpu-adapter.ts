// Which Vulkan device onnxruntime's WebGPU provider (Dawn) will run on, asked before a session
// exists. onnxruntime-node does not expose Dawn's adapter, so a short python3 ctypes script asks
// the same Vulkan loader (same VK_ICD_FILENAMES) for its physical devices and picks the one Dawn
// picks with the provider's high-performance preference: discrete, then integrated, virtual, other,
// and a CPU (software) device last. A CPU device is what WebGPU calls a fallback adapter.
import { execFile } from 'node:child_process';

export interface GpuAdapterInfo {
  /** e.g. "NVIDIA", "Mesa" (from the PCI / Khronos vendor id) */
  vendor: string;
  vendorId: number;
  deviceId: number;
  /** Vulkan device type: discrete-gpu, integrated-gpu, virtual-gpu, cpu, other */
  architecture: string;
  /** device name, e.g. "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)" */
  description: string;
  /** driver name and info, e.g. "llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)" */
  driver: string;
  /** Vulkan API version of the device, e.g. "1.4.305" */
  apiVersion: string;
  /** true for a software (CPU) device: WebGPU's fallback adapter */
  isFallbackAdapter: boolean;
}

export interface AdapterProbe {
  /** the device Dawn is expected to take, if any */
  adapter?: GpuAdapterInfo;
  /** every Vulkan physical device, in the loader's order */
  all: GpuAdapterInfo[];
  /** why there is no adapter (no python3, no libvulkan.so.1, no device) */
  error?: string;
}

const PROBE = String.raw`
import ctypes, json, sys
try:
    vk = ctypes.CDLL('libvulkan.so.1')
except OSError as e:
    print(json.dumps({'error': 'libvulkan.so.1 cannot be loaded (install libvulkan1): %s' % e})); sys.exit(0)
class AppInfo(ctypes.Structure):
    _fields_ = [('sType', ctypes.c_uint32), ('pNext', ctypes.c_void_p), ('pApplicationName', ctypes.c_char_p),
                ('applicationVersion', ctypes.c_uint32), ('pEngineName', ctypes.c_char_p), ('engineVersion', ctypes.c_uint32),
                ('apiVersion', ctypes.c_uint32)]
class InstInfo(ctypes.Structure):
    _fields_ = [('sType', ctypes.c_uint32), ('pNext', ctypes.c_void_p), ('flags', ctypes.c_uint32),
                ('pApplicationInfo', ctypes.POINTER(AppInfo)), ('enabledLayerCount', ctypes.c_uint32),
                ('ppEnabledLayerNames', ctypes.c_void_p), ('enabledExtensionCount', ctypes.c_uint32),
                ('ppEnabledExtensionNames', ctypes.c_void_p)]
class DriverProps(ctypes.Structure):
    _fields_ = [('sType', ctypes.c_uint32), ('pNext', ctypes.c_void_p), ('driverID', ctypes.c_uint32),
                ('driverName', ctypes.c_char * 256), ('driverInfo', ctypes.c_char * 256), ('conformance', ctypes.c_uint8 * 4)]
class Props2(ctypes.Structure):
    _fields_ = [('sType', ctypes.c_uint32), ('pNext', ctypes.c_void_p), ('props', ctypes.c_uint8 * 4096)]
app = AppInfo(0, None, b'patchcert', 1, b'patchcert', 1, (1 << 22) | (2 << 12))
ci = InstInfo(1, None, 0, ctypes.pointer(app), 0, None, 0, None)
inst = ctypes.c_void_p()
r = vk.vkCreateInstance(ctypes.byref(ci), None, ctypes.byref(inst))
if r != 0:
    print(json.dumps({'error': 'vkCreateInstance failed (VkResult %d): no Vulkan driver (ICD) found' % r})); sys.exit(0)
n = ctypes.c_uint32(0)
vk.vkEnumeratePhysicalDevices(inst, ctypes.byref(n), None)
devs = (ctypes.c_void_p * max(1, n.value))()
vk.vkEnumeratePhysicalDevices(inst, ctypes.byref(n), devs)
out = []
for i in range(n.value):
    drv = DriverProps(1000196000, None, 0, b'', b'', (ctypes.c_uint8 * 4)())
    p2 = Props2(1000059001, ctypes.cast(ctypes.pointer(drv), ctypes.c_void_p), (ctypes.c_uint8 * 4096)())
    vk.vkGetPhysicalDeviceProperties2(ctypes.c_void_p(devs[i]), ctypes.byref(p2))
    raw = bytes(p2.props)
    u = lambda o: int.from_bytes(raw[o:o + 4], 'little')
    out.append({'apiVersion': u(0), 'driverVersion': u(4), 'vendorId': u(8), 'deviceId': u(12), 'deviceType': u(16),
                'deviceName': raw[20:276].split(b'\0')[0].decode('utf-8', 'replace'),
                'driverName': drv.driverName.decode('utf-8', 'replace'), 'driverInfo': drv.driverInfo.decode('utf-8', 'replace')})
vk.vkDestroyInstance(inst, None)
print(json.dumps({'devices': out}))
`;

const VENDORS: Record<number, string> = {
  0x10de: 'NVIDIA', 0x1002: 'AMD', 0x1022: 'AMD', 0x8086: 'Intel', 0x13b5: 'ARM', 0x5143: 'Qualcomm',
  0x106b: 'Apple', 0x1ae0: 'Google', 0x1af4: 'Red Hat (virtio)', 0x15ad: 'VMware', 0x10005: 'Mesa', 0x10003: 'Mesa (Khronos id)',
};
const TYPES = ['other', 'integrated-gpu', 'discrete-gpu', 'virtual-gpu', 'cpu'];
/** Dawn's order under the high-performance preference onnxruntime asks for */
const PREFERENCE = ['discrete-gpu', 'integrated-gpu', 'virtual-gpu', 'other', 'cpu'];

interface RawDevice { apiVersion: number; vendorId: number; deviceId: number; deviceType: number; deviceName: string; driverName: string; driverInfo: string }

function version(v: number): string {
  return `${v >>> 22}.${(v >>> 12) & 0x3ff}.${v & 0xfff}`;
}

export function adapterFromVulkan(d: RawDevice): GpuAdapterInfo {
  const architecture = TYPES[d.deviceType] ?? 'other';
  return {
    vendor: VENDORS[d.vendorId] ?? `0x${d.vendorId.toString(16)}`,
    vendorId: d.vendorId,
    deviceId: d.deviceId,
    architecture,
    description: d.deviceName,
    driver: d.driverName ? `${d.driverName}${d.driverInfo ? `: ${d.driverInfo}` : ''}` : '',
    apiVersion: version(d.apiVersion),
    isFallbackAdapter: architecture === 'cpu',
  };
}

/** The device a high-performance WebGPU request takes among these. */
export function pickAdapter(all: readonly GpuAdapterInfo[]): GpuAdapterInfo | undefined {
  return [...all].sort((a, b) => PREFERENCE.indexOf(a.architecture) - PREFERENCE.indexOf(b.architecture))[0];
}

/** One line for summary.json's device field. */
export function describeAdapter(a: GpuAdapterInfo | undefined): string {
  if (!a) return 'adapter unknown';
  return `${a.description} (vendor ${a.vendor}, architecture ${a.architecture}, driver ${a.driver || 'unknown'}, Vulkan ${a.apiVersion}, ` +
    `${a.isFallbackAdapter ? 'software fallback adapter' : 'hardware adapter'})`;
}

let cached: Promise<AdapterProbe> | undefined;

/** Asks Vulkan once per process (python3 + ctypes; a few hundred ms). Never throws. */
export function probeWebgpuAdapter(): Promise<AdapterProbe> {
  cached ??= new Promise<AdapterProbe>((resolve) => {
    const pythons = [process.env.PATCHCERT_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
    const attempt = (i: number, lastError: string) => {
      if (i >= pythons.length) {
        resolve({ all: [], error: `cannot ask Vulkan which adapter WebGPU gets: no python3 to run the probe (${lastError})` });
        return;
      }
      execFile(pythons[i]!, ['-c', PROBE], { timeout: 20_000, encoding: 'utf8' }, (err, stdout) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return attempt(i + 1, `${pythons[i]} not found`);
        try {
          const j = JSON.parse(stdout.trim().split('\n').pop() ?? '') as { devices?: RawDevice[]; error?: string };
          if (j.error) return resolve({ all: [], error: j.error });
          const all = (j.devices ?? []).map(adapterFromVulkan);
          const adapter = pickAdapter(all);
          resolve(adapter ? { adapter, all } : { all, error: 'Vulkan lists no physical device' });
        } catch {
          resolve({ all: [], error: `the Vulkan probe failed: ${err?.message ?? stdout.slice(0, 200)}` });
        }
      });
    };
    attempt(0, '');
  });
  return cached;
}
