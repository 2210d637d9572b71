import { BlockList, isIP } from 'node:net';
import type { Node } from './types';
import { invalid } from '../common/errors';

// Placement constraints as SwarmKit's manager/constraint package has them:
// `key ==|!= value`, all of them ANDed. Keys are case-insensitive, label names
// inside them are not; values compare case-insensitively (strings.EqualFold).
// A missing attribute is "", so `!=` matches it; an unknown key never matches.

export type ConstraintOp = '==' | '!=';

export interface Constraint {
  key: string;      // as written (label names keep their case)
  op: ConstraintOp;
  value: string;    // as written
  // Derived once so matching thousands of nodes does no string work.
  readonly attr: Attr;
  readonly label: string;      // for node.labels.* / engine.labels.*
  readonly valueLower: string;
  readonly ip?: BlockList;     // for node.ip: the address or subnet; undefined if malformed
}

type Attr = 'id' | 'hostname' | 'ip' | 'role' | 'os' | 'arch' | 'nodeLabel' | 'engineLabel' | 'unknown';

const OPERATORS: ConstraintOp[] = ['==', '!='];
const KEY_RE = /^[a-z_][a-z0-9\-_.]+$/i;
// Values may not contain current or future operators (<, >, ~, =, !).
const VALUE_RE = /^[a-z0-9:\-_\s.*()?+[\]\\^$|/]+$/i;

export const NODE_LABEL_PREFIX = 'node.labels.';
export const ENGINE_LABEL_PREFIX = 'engine.labels.';

// Throws ShoalError(invalid) with SwarmKit's message; the control API wraps it
// as `rpc error: code = InvalidArgument desc = …` like dockerd.
export function parseConstraints(exprs: readonly string[]): Constraint[] {
  const out: Constraint[] = [];
  for (const e of exprs) {
    if (typeof e !== 'string') throw invalid('constraint expected one operator from ==, !=');
    let found = false;
    for (const op of OPERATORS) {
      const at = e.indexOf(op);
      if (at < 0) continue;
      const key = e.slice(0, at).trim();
      if (!KEY_RE.test(key)) throw invalid(`key '${key}' is invalid`);
      const value = e.slice(at + op.length).trim();
      if (!VALUE_RE.test(value)) throw invalid(`value '${value}' is invalid`);
      out.push(makeConstraint(key, op, value));
      found = true;
      break;
    }
    if (!found) throw invalid(`constraint expected one operator from ${OPERATORS.join(', ')}`);
  }
  return out;
}

// For tasks already stored: their constraints were validated on the way in;
// should one still fail to parse, SwarmKit ignores the constraints rather than
// leaving the task unschedulable. Parsed lists are cached by their text.
const lenientCache = new Map<string, Constraint[]>();
const byArray = new WeakMap<readonly string[], Constraint[]>();
export function parseConstraintsLenient(exprs: readonly string[] | undefined): Constraint[] {
  if (!Array.isArray(exprs) || exprs.length === 0) return [];
  // Stored arrays are never changed: the same array (every task of a pass
  // shares its template's) is looked up without joining it again.
  const same = byArray.get(exprs);
  if (same) return same;
  const k = exprs.join('\u0000');
  let c = lenientCache.get(k);
  if (!c) {
    try { c = parseConstraints(exprs); } catch { c = []; }
    if (lenientCache.size > 10_000) lenientCache.clear();
    lenientCache.set(k, c);
  }
  byArray.set(exprs, c);
  return c;
}

function makeConstraint(key: string, op: ConstraintOp, value: string): Constraint {
  const lower = key.toLowerCase();
  let attr: Attr = 'unknown';
  let label = '';
  if (lower === 'node.id') attr = 'id';
  else if (lower === 'node.hostname') attr = 'hostname';
  else if (lower === 'node.ip') attr = 'ip';
  else if (lower === 'node.role') attr = 'role';
  else if (lower === 'node.platform.os') attr = 'os';
  else if (lower === 'node.platform.arch') attr = 'arch';
  else if (lower.length > NODE_LABEL_PREFIX.length && lower.startsWith(NODE_LABEL_PREFIX)) { attr = 'nodeLabel'; label = key.slice(NODE_LABEL_PREFIX.length); }
  else if (lower.length > ENGINE_LABEL_PREFIX.length && lower.startsWith(ENGINE_LABEL_PREFIX)) { attr = 'engineLabel'; label = key.slice(ENGINE_LABEL_PREFIX.length); }
  return { key, op, value, attr, label, valueLower: value.toLowerCase(), ip: attr === 'ip' ? ipMatcher(value) : undefined };
}

function ipMatcher(value: string): BlockList | undefined {
  const bl = new BlockList();
  const fam = isIP(value);
  if (fam) { bl.addAddress(value, fam === 6 ? 'ipv6' : 'ipv4'); return bl; }
  const m = /^(.+)\/(\d{1,3})$/.exec(value);
  if (m && isIP(m[1]!)) {
    const f = isIP(m[1]!) === 6 ? 'ipv6' : 'ipv4';
    const prefix = Number(m[2]);
    if (prefix > (f === 'ipv6' ? 128 : 32)) return undefined;
    bl.addSubnet(m[1]!, prefix, f);
    return bl;
  }
  return undefined;
}

function nodeIp(node: Node): string {
  const a = node.Status?.Addr ?? '';
  // Addr may carry a port ("10.0.0.1:2377") in some writers; the constraint is about the IP.
  const m = /^\[?([0-9a-fA-F:.]+?)\]?(?::\d+)?$/.exec(a);
  const ip = m && isIP(m[1]!) ? m[1]! : a;
  return ip;
}

export function nodeRole(node: Node): string {
  return node.Spec?.Role ?? (node.ManagerStatus ? 'manager' : 'worker');
}

// The attribute a constraint looks at, "" when the node does not have it.
function attrValue(c: Constraint, node: Node): string {
  switch (c.attr) {
    case 'id': return node.ID;
    case 'hostname': return node.Description?.Hostname ?? '';
    case 'role': return nodeRole(node);
    case 'os': return node.Description?.Platform?.OS ?? '';
    case 'arch': return node.Description?.Platform?.Architecture ?? '';
    case 'nodeLabel': return node.Spec?.Labels?.[c.label] ?? '';
    case 'engineLabel': return node.Description?.Engine?.Labels?.[c.label] ?? '';
    default: return '';
  }
}

export function matchesConstraint(node: Node, c: Constraint): boolean {
  if (c.attr === 'unknown') return false;
  if (c.attr === 'ip') {
    if (!c.ip) return false;
    const ip = nodeIp(node);
    const fam = isIP(ip);
    const within = fam !== 0 && c.ip.check(ip, fam === 6 ? 'ipv6' : 'ipv4');
    return c.op === '==' ? within : !within;
  }
  const v = attrValue(c, node);
  // strings.EqualFold; toLowerCase is close enough for the characters VALUE_RE allows.
  const eq = v.length === c.value.length && v.toLowerCase() === c.valueLower;
  return c.op === '==' ? eq : !eq;
}

export function matchesConstraints(node: Node, constraints: readonly Constraint[]): boolean {
  for (const c of constraints) if (!matchesConstraint(node, c)) return false;
  return true;
}
