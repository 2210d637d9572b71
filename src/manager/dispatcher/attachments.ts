import type { Network, Task } from '../../model/types';
import { forbidden, invalid, notFound, unavailable } from '../../common/errors';
import type { Logger } from '../../common/log';
import { newId } from '../../common/ids';
import { nowIso } from '../../common/time';
import type { RpcServer } from '../../rpc/transport';
import type { Store } from '../../store/store';
import { AttachNetwork, DetachNetwork, isAttachmentTask, NameAttachment, type AttachNetworkRequest, type AttachNetworkResponse } from '../../protocol/attachments';
import { holdsAddresses } from '../allocator/core';
import { addrOf, formatIp, last, parseCidr, parseIp } from '../allocator/ipv4';

// The leader's end of network attachments (protocol/attachments.ts), as
// SwarmKit's ResourceAllocator: a task with NetworkAttachmentSpec and the
// caller's node, no service, which the allocator gives an address like any
// task (`new` → `pending`); it is never scheduled nor sent to an agent, and
// it stays until the node gives it back or the node is removed. Its node's
// network view then includes the network (the overlay is made there) and
// every other node's view its address (reachable across hosts).

export interface AttachmentDeps {
  store: Store;                    // reads
  writer: () => Store;             // the term's fenced store (throws when not leading)
  log: Logger;
  now: () => number;
}

// How long an attach waits for the allocator.
export const ATTACH_WAIT_MS = 10_000;

// moby's findUniqueNetwork over the swarm's networks: full ID, unique name, unique ID prefix.
export function resolveNetwork(networks: Network[], term: string): Network | undefined {
  const exact = networks.find((n) => n.ID === term);
  if (exact) return exact;
  const named = networks.filter((n) => n.Spec.Name === term);
  if (named.length > 1) throw invalid(`network ${term} is ambiguous (${named.length} matches found based on name)`);
  if (named.length === 1) return named[0];
  const prefixed = networks.filter((n) => n.ID.startsWith(term));
  if (prefixed.length > 1) throw invalid(`network ${term} is ambiguous (${prefixed.length} matches found based on ID prefix)`);
  return prefixed[0];
}

// Why `addr` cannot be asked for on `net`, or undefined when it is free (pure).
export function requestedAddressProblem(net: Network, addr: string, o: { tasks: Iterable<Task>; vips: Iterable<{ NetworkID: string; Addr: string }>; lbs: Iterable<{ NetworkID: string; Addr: string }> }): string | undefined {
  const cfg = net.IPAM?.Configs?.[0];
  const subnet = cfg?.Subnet ? parseCidr(cfg.Subnet, true) : undefined;
  const a = parseIp(addr);
  if (!subnet || a === undefined) return `invalid address ${addr}`;
  if (a <= subnet.base || a >= last(subnet)) return `address ${addr} is not in the usable range of subnet ${cfg!.Subnet}`;
  if (a === parseIp(cfg!.Gateway ?? formatIp(subnet.base + 1))) return `Address already in use: ${addr} is the gateway of network ${net.Spec.Name ?? net.ID}`;
  const taken = (x: string | undefined): boolean => x !== undefined && addrOf(x) === addr;
  for (const t of o.tasks) {
    if (!holdsAddresses(t)) continue;
    for (const at of t.NetworksAttachments ?? []) if (at.Network?.ID === net.ID && at.Addresses?.some(taken)) return `Address already in use: ${addr}`;
  }
  for (const v of [...o.vips, ...o.lbs]) if (v.NetworkID === net.ID && taken(v.Addr)) return `Address already in use: ${addr}`;
  return undefined;
}

export function notAttachable(target: string): Error {
  return forbidden(`Could not attach to network ${target}: rpc error: code = PermissionDenied desc = network ${target} not manually attachable`);
}

export function registerAttachmentHandlers(server: RpcServer, deps: AttachmentDeps): void {
  const { store, log } = deps;

  async function attach(req: AttachNetworkRequest, nodeId: string): Promise<AttachNetworkResponse> {
    const net = resolveNetwork(store.list('networks'), req.Target);
    if (!net) throw notFound(`network ${req.Target} not found`);
    if (!net.Spec.Attachable || net.Spec.Ingress) throw notAttachable(req.Target);
    const ts = nowIso(deps.now());
    const task: Task = {
      ID: newId(), Version: { Index: 0 }, CreatedAt: ts, UpdatedAt: ts, Labels: {},
      Spec: { NetworkAttachmentSpec: { ContainerID: req.Container ?? '' }, Networks: [{ Target: net.ID, ...(req.Aliases.length ? { Aliases: req.Aliases } : {}) }] },
      ServiceID: '', NodeID: nodeId, DesiredState: 'running',
      Status: { Timestamp: ts, State: 'new', Message: 'created' },
    };
    if (req.Address) {
      const problem = requestedAddressProblem(net, req.Address, {
        tasks: store.list('tasks'),
        vips: store.list('services').flatMap((s) => s.Endpoint?.VirtualIPs ?? []),
        lbs: store.list('nodes').flatMap((n) => (n.Attachments ?? []).map((a) => ({ NetworkID: a.Network?.ID ?? '', Addr: a.Addresses?.[0] ?? '' }))),
      });
      if (problem) throw invalid(problem);
      // The allocator keeps an address a new task already holds.
      const bits = net.IPAM!.Configs![0]!.Subnet!.split('/')[1];
      task.NetworksAttachments = [{ Network: structuredClone(net), Addresses: [`${req.Address}/${bits}`] }];
    }
    const allocated = waitAllocated(task.ID);
    try {
      await deps.writer().txn().create('tasks', task).commit();
    } catch (err) {
      allocated.cancel();
      throw err;
    }
    const done = await allocated.result;
    const addr = done?.NetworksAttachments?.find((a) => a.Network?.ID === net.ID)?.Addresses?.[0];
    if (!done || !addr || done.Status.State !== 'pending' || (req.Address && addrOf(addr) !== req.Address)) {
      await deleteTask(task.ID).catch((err: unknown) => log.warn({ err: (err as Error).message, attachment: task.ID }, 'removing a failed network attachment failed'));
      const why = done?.Status.Err ?? (done ? `address ${addr ?? 'none'} instead of ${req.Address}` : `no address within ${ATTACH_WAIT_MS / 1000} s`);
      throw done ? invalid(`Could not attach to network ${req.Target}: ${why}`) : unavailable(`Could not attach to network ${req.Target}: ${why}`);
    }
    log.info({ node: nodeId, network: net.ID, attachment: task.ID, addr, container: req.Container }, 'network attachment allocated');
    return { AttachmentID: task.ID, Network: done.NetworksAttachments!.find((a) => a.Network?.ID === net.ID)!.Network, Address: addr };
  }

  // Resolves with the task once the allocator has decided (an address, or an
  // error on it), undefined when it does not within ATTACH_WAIT_MS or is deleted.
  function waitAllocated(id: string): { result: Promise<Task | undefined>; cancel(): void } {
    let finish!: (t: Task | undefined) => void;
    const result = new Promise<Task | undefined>((resolve) => { finish = resolve; });
    const decided = (t: Task | undefined): boolean => !t || t.Status.State !== 'new' || !!t.Status.Err;
    const unsubscribe = store.subscribe((events) => {
      for (const e of events) {
        if (e.kind !== 'tasks' || e.id !== id) continue;
        const t = e.object as Task | undefined;
        if (decided(t)) end(t);
      }
    });
    const timer = setTimeout(() => end(undefined), ATTACH_WAIT_MS);
    function end(t: Task | undefined): void { clearTimeout(timer); unsubscribe(); finish(t); }
    return { result, cancel: () => end(undefined) };
  }

  async function deleteTask(id: string): Promise<void> {
    const t = store.get('tasks', id);
    if (t) await deps.writer().txn().delete('tasks', t).commit();
  }

  server.unary(AttachNetwork, async (req, ctx) => {
    deps.writer(); // refuses when not leading
    return attach(req, ctx.peer!.nodeId);
  });
  server.unary(DetachNetwork, async (req, ctx) => {
    deps.writer();
    const t = store.get('tasks', req.AttachmentID);
    if (!t) return {}; // already gone: detaching is idempotent
    if (!isAttachmentTask(t) || t.NodeID !== ctx.peer!.nodeId) throw notFound(`network attachment ${req.AttachmentID} not found`);
    await deleteTask(t.ID);
    log.info({ node: t.NodeID, attachment: t.ID }, 'network attachment released');
    return {};
  });
  server.unary(NameAttachment, async (req, ctx) => {
    const writer = deps.writer();
    const t = store.get('tasks', req.AttachmentID);
    if (!t || !isAttachmentTask(t) || t.NodeID !== ctx.peer!.nodeId) throw notFound(`network attachment ${req.AttachmentID} not found`);
    // The aliases go where the allocator put them at allocation too (the
    // attachment's NetworksAttachments, which the views read).
    const withAliases = <T extends { Aliases?: string[] }>(x: T): T => {
      const aliases = [...new Set([...(x.Aliases ?? []), ...req.Aliases])];
      return aliases.length ? { ...x, Aliases: aliases } : x;
    };
    await writer.mutate('tasks', t.ID, (cur) => ({
      ...cur,
      Spec: { ...cur.Spec, NetworkAttachmentSpec: { ContainerID: req.Container }, ...(cur.Spec.Networks ? { Networks: cur.Spec.Networks.map(withAliases) } : {}) },
      ...(cur.NetworksAttachments ? { NetworksAttachments: cur.NetworksAttachments.map(withAliases) } : {}),
    }));
    log.info({ node: t.NodeID, attachment: t.ID, container: req.Container }, 'network attachment named');
    return {};
  });
}

// A removed node's attachments go with it (their containers went with the node).
export async function dropNodeAttachments(store: Store, fenced: Store, nodeId: string): Promise<void> {
  const gone = store.tasksOfNode(nodeId).filter(isAttachmentTask);
  if (!gone.length) return;
  const txn = fenced.txn();
  for (const t of gone) txn.delete('tasks', t);
  await txn.commit();
}
