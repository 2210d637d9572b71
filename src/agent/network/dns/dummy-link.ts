import { internal, type ShoalError } from '../../../common/errors';
import { run } from '../../../common/run';

// The link that carries the DNS server's address in the node's network
// namespace: a local address every container on the node reaches through its
// default route, whatever networks the node has. A `dummy` link where the
// kernel has the driver; else (CONFIG_DUMMY unset, as on this project's
// machines) a bridge without ports, which holds a local address just as well.

const IP_TIMEOUT_MS = 5_000;

// Makes `name` (up) carry `addr`/32. Idempotent: a link left by an earlier
// run is reused.
export async function ensureDummyLink(name: string, addr: string): Promise<ShoalError | undefined> {
  let add = await ip(['link', 'add', name, 'type', 'dummy']);
  if (add.code !== 0 && /Unknown device type|not supported/i.test(add.stderr)) {
    add = await ip(['link', 'add', name, 'type', 'bridge']);
  }
  if (add.code !== 0 && !/File exists/.test(add.stderr)) return internal(`ip link add ${name}: ${add.stderr.trim()}`);
  for (const args of [['addr', 'replace', `${addr}/32`, 'dev', name], ['link', 'set', name, 'up']]) {
    const r = await ip(args);
    if (r.code !== 0) return internal(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  }
  return undefined;
}

export async function removeDummyLink(name: string): Promise<ShoalError | undefined> {
  const r = await ip(['link', 'del', name]);
  if (r.code !== 0 && !/Cannot find device/.test(r.stderr)) return internal(`ip link del ${name}: ${r.stderr.trim()}`);
  return undefined;
}

const ip = (args: string[]) => run('ip', args, { timeoutMs: IP_TIMEOUT_MS });
