import { internal, type ShoalError } from '../../../common/errors';
import { run } from '../../../common/run';

// The dummy interface that carries the DNS server's address in the node's
// network namespace: a local address every container on the node reaches
// through its default route, whatever networks the node has.

const IP_TIMEOUT_MS = 5_000;

// Makes `name` (a dummy link, up) carry `addr`/32. Idempotent: a link left by
// an earlier run is reused.
export async function ensureDummyLink(name: string, addr: string): Promise<ShoalError | undefined> {
  const add = await run('ip', ['link', 'add', name, 'type', 'dummy'], { timeoutMs: IP_TIMEOUT_MS });
  if (add.code !== 0 && !/File exists/.test(add.stderr)) return internal(`ip link add ${name}: ${add.stderr.trim()}`);
  for (const args of [['addr', 'replace', `${addr}/32`, 'dev', name], ['link', 'set', name, 'up']]) {
    const r = await run('ip', args, { timeoutMs: IP_TIMEOUT_MS });
    if (r.code !== 0) return internal(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  }
  return undefined;
}

export async function removeDummyLink(name: string): Promise<ShoalError | undefined> {
  const r = await run('ip', ['link', 'del', name], { timeoutMs: IP_TIMEOUT_MS });
  if (r.code !== 0 && !/Cannot find device/.test(r.stderr)) return internal(`ip link del ${name}: ${r.stderr.trim()}`);
  return undefined;
}
