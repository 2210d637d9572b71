// Pure naming and addressing of a lab: which names, addresses, devices and
// paths each host gets. Kernel objects carry the `shoal-lab` prefix so that
// `lab down` finds what a crashed run left even without its state file.
import { join } from 'node:path';

// Several labs can run side by side (parallel work, a Docker Swarm lab next to
// a Shoal lab): SHOAL_LAB_INDEX=N (1..99) gives lab N its own names, subnet
// 10.199.N.0/24 and folder. Index 0 (the default) keeps the plain names.
export const LAB_INDEX = labIndex(process.env.SHOAL_LAB_INDEX);
const SUFFIX = LAB_INDEX === 0 ? '' : String(LAB_INDEX);

export function labIndex(v: string | undefined): number {
  if (v === undefined || v === '') return 0;
  if (!/^(0|[1-9][0-9]?)$/.test(v)) throw new Error(`SHOAL_LAB_INDEX wants a whole number from 0 to 99, got "${v}"`);
  return Number(v);
}

export const DEFAULT_DIR = `/var/lib/shoal-lab${SUFFIX}`;
export const BRIDGE = `shoal-lab${LAB_INDEX}`;
export const NETNS_PREFIX = `shoal-lab${SUFFIX}-`;
export const VETH_PREFIX = LAB_INDEX === 0 ? 'sl-' : `s${LAB_INDEX}-`;
export const IPTABLES_COMMENT = `shoal-lab${SUFFIX}`;
// cgroup parent of every host's containers, so that down can remove what runc left after a kill.
export const CGROUP_PARENT = `shoal-lab${SUFFIX}`;
export const REGISTRY_PORT = 5000;
export const REGISTRY_USER = 'shoal';
export const MAX_HOSTS = 50;

// A private /24 this machine does not use; the bridge is .1, hosts .11, .12, ...
export const SUBNET = { base: `10.199.${LAB_INDEX}`, prefix: 24 } as const;
const FIRST_HOST_OCTET = 11;

export const subnetCidr = (): string => `${SUBNET.base}.0/${SUBNET.prefix}`;
export const bridgeAddress = (): string => `${SUBNET.base}.1`;
export const registryAddress = (): string => `${bridgeAddress()}:${REGISTRY_PORT}`;

// Short names that fit in a veth name (15 chars with the prefix) and a hostname.
const NAME_RE = /^[a-z][a-z0-9-]{0,11}$/;

export function checkHostName(name: string): string {
  if (!NAME_RE.test(name)) throw new Error(`invalid lab host name "${name}": lower-case letters, digits and "-", starting with a letter, at most 12 characters`);
  return name;
}

export function hostNames(count: number): string[] {
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS) throw new Error(`--hosts wants a whole number from 1 to ${MAX_HOSTS}, got ${count}`);
  return Array.from({ length: count }, (_, i) => `host${i + 1}`);
}

export function hostAddress(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_HOSTS) throw new Error(`host index ${index} out of range`);
  return `${SUBNET.base}.${FIRST_HOST_OCTET + index}`;
}

export interface HostLayout {
  name: string;
  address: string;
  netns: string;          // ip netns name; /var/run/netns/<netns>
  veth: string;           // host-side end on the bridge (the ns side is eth0)
  dir: string;            // everything on disk for this host
  dockerData: string;
  dockerExec: string;
  dockerPidfile: string;
  dockerSocket: string;
  shoalSocket: string;
  shoalData: string;
  initScript: string;
  dockerLog: string;
  shoalLog: string;
  cgroupParent: string;
}

export function hostLayout(labDir: string, name: string, index: number): HostLayout {
  checkHostName(name);
  const dir = join(labDir, 'hosts', name);
  // Linux caps interface names at 15 characters; a two-digit lab index leaves 11 for the name.
  if (VETH_PREFIX.length + name.length > 15) throw new Error(`lab host name "${name}" is too long for lab index ${LAB_INDEX}: at most ${15 - VETH_PREFIX.length} characters`);
  return {
    name,
    address: hostAddress(index),
    netns: `${NETNS_PREFIX}${name}`,
    veth: `${VETH_PREFIX}${name}`,
    dir,
    dockerData: join(dir, 'docker'),
    dockerExec: join(dir, 'docker-exec'),
    dockerPidfile: join(dir, 'docker-exec', 'dockerd.pid'),
    dockerSocket: join(dir, 'docker.sock'),
    shoalSocket: join(dir, 'shoal.sock'),
    shoalData: join(dir, 'shoal'),
    initScript: join(dir, 'init.sh'),
    dockerLog: join(dir, 'dockerd.log'),
    shoalLog: join(dir, 'shoal.log'),
    cgroupParent: `/${CGROUP_PARENT}/${name}`,
  };
}

export interface RegistryLayout {
  dir: string;
  config: string;
  htpasswd: string;
  data: string;
  log: string;
  address: string;
}

export function registryLayout(labDir: string): RegistryLayout {
  const dir = join(labDir, 'registry');
  return {
    dir,
    // The file name marks the process as the lab's (`down` finds it by its command line).
    config: join(dir, `${NETNS_PREFIX}registry.yml`),
    htpasswd: join(dir, 'htpasswd'),
    data: join(dir, 'data'),
    log: join(dir, 'registry.log'),
    address: registryAddress(),
  };
}

export const stateFile = (labDir: string): string => join(labDir, 'lab.json');
