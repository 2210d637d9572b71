import { invalid } from '../common/errors';
import type { Labels } from '../model/types';

// The small checks every message of the dispatcher's contract goes through
// (protocol/dispatcher.ts, protocol/network-view.ts): each throws `invalid`
// naming the field.

export const MAX_TEXT = 64 * 1024;
export const MAX_ID = 128;

export type Rec = Record<string, unknown>;
export const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);

export function rec(v: unknown, what: string): Rec {
  if (!isRec(v)) throw invalid(`${what}: want an object`);
  return v;
}
export function str(v: unknown, what: string, max = MAX_TEXT): string {
  if (typeof v !== 'string') throw invalid(`${what}: want a string`);
  if (v.length > max) throw invalid(`${what}: longer than ${max} characters`);
  return v;
}
export function optStr(v: unknown, what: string, max = MAX_TEXT): string | undefined {
  return v === undefined ? undefined : str(v, what, max);
}
export function id(v: unknown, what: string): string {
  const s = str(v, what, MAX_ID);
  if (!s) throw invalid(`${what}: empty`);
  return s;
}
export function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(`${what}: want a number`);
  return v;
}
// An object's Version.Index (an etcd revision): a non-negative integer.
export function version(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(`${what}: want a non-negative integer`);
  return v;
}
export function optNum(v: unknown, what: string): number | undefined {
  return v === undefined ? undefined : num(v, what);
}
export function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw invalid(`${what}: want a boolean`);
  return v;
}
export function arr(v: unknown, what: string, max = 1_000_000): unknown[] {
  if (!Array.isArray(v)) throw invalid(`${what}: want an array`);
  if (v.length > max) throw invalid(`${what}: more than ${max} items`);
  return v;
}
// Where the managers are (host:port each) and which of them leads, as a
// manager tells a node: in every session message and in the answer to a join.
export interface ManagerList { LeaderAddr?: string; Addrs: string[] }
const MAX_MANAGERS = 100;
const MAX_ADDR = 300;
// The same inside a process (a manager's view of its peers, a joined node's).
export interface KnownManagers { leaderAddr?: string; addrs: string[] }
export function toManagerList(m: KnownManagers): ManagerList {
  return { ...(m.leaderAddr ? { LeaderAddr: m.leaderAddr } : {}), Addrs: m.addrs };
}
export function managerList(v: unknown, what: string): ManagerList {
  const r = rec(v, what);
  const leader = optStr(r.LeaderAddr, `${what}.LeaderAddr`, MAX_ADDR);
  return { ...(leader !== undefined ? { LeaderAddr: leader } : {}), Addrs: arr(r.Addrs, `${what}.Addrs`, MAX_MANAGERS).map((a, i) => str(a, `${what}.Addrs[${i}]`, MAX_ADDR)) };
}
export function labels(v: unknown, what: string): Labels | undefined {
  if (v === undefined || v === null) return undefined;
  const r = rec(v, what);
  for (const [k, val] of Object.entries(r)) str(val, `${what}.${k}`);
  return r as Labels;
}
export function oneOf<T extends string>(v: unknown, values: readonly T[], what: string): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw invalid(`${what}: want one of ${values.join(', ')}`);
  return v as T;
}
