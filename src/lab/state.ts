// The lab's state file (DIR/lab.json): which hosts exist, which are powered
// and which are cut off, the registry's credentials. Checked when read: a
// hand-edited or truncated file gives a clear error, never a half lab.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { checkHostName } from './layout';

// What runs on each host: dockerd and a Shoal daemon (DOCKER_HOST is Shoal), or
// dockerd alone (DOCKER_HOST is dockerd: a lab of real Docker Swarm).
export type LabEngine = 'shoal' | 'docker';
export type HostRole = 'manager' | 'worker';

export interface HostState {
  name: string;
  role?: HostRole;        // set when `up --managers/--workers` joined it
  index: number;          // address slot (hostAddress(index))
  powered: boolean;       // false after `lab kill`
  partitioned: boolean;   // true after `lab partition`
  initPid?: number;       // the host's `unshare` process (its child is the host's pid 1)
}

export interface RegistryState {
  user: string;
  password: string;
  pid?: number;
}

export interface LabState {
  version: 1;
  dir: string;
  engine?: LabEngine;     // absent: 'shoal' (labs made before there was a choice)
  hosts: HostState[];
  registry?: RegistryState;
  icmpRatelimit?: string;  // the machine's value before the lab set it to 0
}

function fail(file: string, why: string): never {
  throw new Error(`lab state ${file} is not usable (${why}); \`shoal lab down\` removes the lab anyway`);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const optPid = (v: unknown): boolean => v === undefined || (Number.isInteger(v) && (v as number) > 0);

export function parseState(text: string, file = 'lab.json'): LabState {
  let raw: unknown;
  try { raw = JSON.parse(text); } catch (err) { fail(file, `not JSON: ${(err as Error).message}`); }
  if (!isObj(raw)) fail(file, 'not an object');
  if (raw.version !== 1) fail(file, `unknown version ${String(raw.version)}`);
  if (typeof raw.dir !== 'string') fail(file, 'no dir');
  if (!Array.isArray(raw.hosts)) fail(file, 'no hosts');
  const names = new Set<string>();
  const hosts: HostState[] = raw.hosts.map((h, i) => {
    if (!isObj(h)) fail(file, `host ${i} is not an object`);
    if (typeof h.name !== 'string') fail(file, `host ${i} has no name`);
    try { checkHostName(h.name); } catch (err) { fail(file, (err as Error).message); }
    if (names.has(h.name)) fail(file, `host ${h.name} twice`);
    names.add(h.name);
    if (!Number.isInteger(h.index) || (h.index as number) < 0) fail(file, `host ${h.name} has no address index`);
    if (typeof h.powered !== 'boolean' || typeof h.partitioned !== 'boolean') fail(file, `host ${h.name} has no power/partition flags`);
    if (!optPid(h.initPid)) fail(file, `host ${h.name} has a bad pid`);
    if (h.role !== undefined && h.role !== 'manager' && h.role !== 'worker') fail(file, `host ${h.name} has an unknown role`);
    return {
      name: h.name, index: h.index as number, powered: h.powered, partitioned: h.partitioned,
      ...(h.role !== undefined ? { role: h.role as HostRole } : {}),
      ...(h.initPid !== undefined ? { initPid: h.initPid as number } : {}),
    };
  });
  let registry: RegistryState | undefined;
  if (raw.registry !== undefined) {
    const r = raw.registry;
    if (!isObj(r) || typeof r.user !== 'string' || typeof r.password !== 'string' || !optPid(r.pid)) fail(file, 'bad registry');
    registry = { user: r.user, password: r.password, ...(r.pid !== undefined ? { pid: r.pid as number } : {}) };
  }
  if (raw.icmpRatelimit !== undefined && typeof raw.icmpRatelimit !== 'string') fail(file, 'bad icmpRatelimit');
  if (raw.engine !== undefined && raw.engine !== 'shoal' && raw.engine !== 'docker') fail(file, `unknown engine ${String(raw.engine)}`);
  return {
    version: 1, dir: raw.dir, hosts,
    ...(raw.engine !== undefined ? { engine: raw.engine as LabEngine } : {}),
    ...(registry ? { registry } : {}),
    ...(raw.icmpRatelimit !== undefined ? { icmpRatelimit: raw.icmpRatelimit as string } : {}),
  };
}

export function findHost(state: LabState, name: string): HostState {
  const h = state.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`no lab host named "${name}" (hosts: ${state.hosts.map((x) => x.name).join(', ') || 'none'})`);
  return h;
}

// undefined when there is no state file.
export function readState(file: string): LabState | undefined {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseState(text, file);
}

// Written whole and renamed, so a crash never leaves half a file.
export function writeState(file: string, state: LabState): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}
