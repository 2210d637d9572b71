// Which conntrack entries to drop when backends go away (pure). New
// connections follow the new table at once, but an existing conntrack entry
// keeps its NAT binding: a UDP "connection" that keeps sending would stick to
// a removed backend forever, and TCP to a dead one would hang until its
// retries run out. Deleting the entry makes the next packet a new connection,
// balanced again (kube-proxy does the same for UDP). Only entries this table
// balanced (MARK_BALANCED) are touched.
import { hexMark, MARK_BALANCED, type Frontend } from './ruleset';

const OURS = ['--mark', `${hexMark(MARK_BALANCED)}/${hexMark(MARK_BALANCED)}`];

const backendId = (f: Frontend, addr: string): string => (f.kind === 'mesh' ? `${addr}:${f.targetPort}` : addr);

// `conntrack` argument lists, one per (frontend, backend) that was in `before` and is not in `after`.
export function staleFlowDeletes(before: Frontend[], after: Frontend[]): string[][] {
  const now = new Map(after.map((f) => [f.key, f]));
  const out: string[][] = [];
  for (const f of before) {
    const g = now.get(f.key);
    const kept = new Set(g ? g.backends.map((b) => backendId(g, b)) : []);
    for (const b of f.backends) {
      if (kept.has(backendId(f, b))) continue;
      out.push(f.kind === 'vip'
        ? ['-D', '--orig-dst', f.addr!, '--reply-src', b, ...OURS]
        : ['-D', '-p', f.proto!, '--orig-port-dst', String(f.port), '--reply-src', b, '--reply-port-src', String(f.targetPort), ...OURS]);
    }
  }
  return out;
}
