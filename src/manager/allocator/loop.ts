import type { Network, Node, Service, Task } from '../../model/types';
import type { LeaderComponentHandle, LeaderComponentOptions } from '../loop/component';
import { ShoalError } from '../../common/errors';
import { nowIso } from '../../common/time';
import { deepEqual } from '../../common/deep-equal';
import type { Kind, Objects, StoreEvent } from '../../store/objects';
import { planBatches } from '../../store/store';
import { AllocatorCore, holdsAddresses, isAllocatedNetwork, needsAllocation } from './core';

// The allocator's I/O (on the leader, with the term's fenced store): feeds
// the core every store event, and in passes (coalesced like the scheduler's)
// decides and writes, in this order: networks, services, tasks, nodes, each
// phase committed before the next decides (a task's address never comes from
// a subnet whose write failed). A write refused because the object changed is
// undone in the core (observe the stored object) and decided again; one that
// fails for its own reason (too big) fails alone.

export type AllocatorHandle = LeaderComponentHandle;
export type AllocatorOptions = LeaderComponentOptions;

const BATCH_MS = 10;
const RETRY_MS = 1000;

type Write<K extends Kind> = { read: Objects[K]; next: Objects[K] };

export function startAllocator(opts: AllocatorOptions): AllocatorHandle {
  const { store, log } = opts;
  const now = opts.now ?? Date.now;
  const core = new AllocatorCore();
  const dirty = { networks: new Set<string>(), services: new Set<string>(), tasks: new Set<string>(), nodes: new Set<string>() };
  // Tasks and nodes that could not get addresses: tried again when some are released.
  const parkedTasks = new Set<string>();
  const parkedNodes = new Set<string>();
  const nodesWarned = new Set<string>();
  let kick: NodeJS.Timeout | undefined;
  let running = false;
  let stopped = false;
  let idleWaiters: Array<() => void> = [];

  const report = (problems: string[]): void => {
    for (const p of problems) log.error({ problem: p }, 'allocation state in the store is inconsistent');
  };

  const settingsOf = (c: Objects['cluster'] | undefined): void => {
    if (c) core.setSettings({ defaultAddrPool: c.DefaultAddrPool, subnetSize: c.SubnetSize });
  };

  function unpark(): void {
    for (const id of parkedTasks) dirty.tasks.add(id);
    for (const id of parkedNodes) dirty.nodes.add(id);
    parkedTasks.clear();
    parkedNodes.clear();
  }

  function allServices(): void { for (const s of store.list('services')) dirty.services.add(s.ID); }
  function allNodes(): void { for (const n of store.list('nodes')) dirty.nodes.add(n.ID); }

  function onTask(e: StoreEvent): boolean {
    const t = e.object as Task | undefined;
    const prev = e.previous as Task | undefined;
    report(core.observeTask(e.id, t));
    let freed = false;
    const held = (x: Task | undefined): boolean => !!x && holdsAddresses(x) && !!x.NetworksAttachments?.length;
    if (held(prev) && !held(t)) freed = true;
    // A node's load-balancer addresses follow the networks its tasks hold
    // addresses on: a task holding none, before or after, changes nothing
    // there (a 150,000-task create without networks had every node decided
    // again, and a node the ingress has no address for tried again, for each
    // batch of its tasks).
    if ((held(prev) || held(t)) && (held(prev) !== held(t) || prev?.NodeID !== t?.NodeID || !deepEqual(prev?.NetworksAttachments, t?.NetworksAttachments))) {
      if (prev?.NodeID) dirty.nodes.add(prev.NodeID);
      if (t?.NodeID) dirty.nodes.add(t.NodeID);
    }
    if (!t || !needsAllocation(t)) { dirty.tasks.delete(e.id); parkedTasks.delete(e.id); return freed; }
    // A parked task whose only change is our own error note stays parked.
    if (parkedTasks.has(e.id) && prev && prev.DesiredState === t.DesiredState && prev.Spec === t.Spec && prev.NodeID === t.NodeID) return freed;
    parkedTasks.delete(e.id);
    dirty.tasks.add(e.id);
    return freed;
  }

  const onEvents = (events: StoreEvent[]): void => {
    let freed = false;
    for (const e of events) {
      switch (e.kind) {
        case 'cluster':
          settingsOf(e.object as Objects['cluster'] | undefined);
          for (const n of store.list('networks')) if (!isAllocatedNetwork(n)) dirty.networks.add(n.ID);
          break;
        case 'networks': {
          const n = e.object as Network | undefined;
          report(core.observeNetwork(e.id, n));
          if (n && !isAllocatedNetwork(n)) dirty.networks.add(e.id);
          // Services and tasks may have waited for it (or lost it); ingress concerns every node.
          allServices();
          if (((n ?? e.previous) as Network | undefined)?.Spec?.Ingress) allNodes();
          freed = true;
          break;
        }
        case 'services': {
          const s = e.object as Service | undefined;
          report(core.observeService(e.id, s));
          if (s) dirty.services.add(e.id); else freed = true;
          break;
        }
        case 'tasks':
          if (onTask(e)) freed = true;
          break;
        case 'nodes': {
          const n = e.object as Node | undefined;
          report(core.observeNode(e.id, n));
          if (!n) { freed = true; dirty.nodes.delete(e.id); parkedNodes.delete(e.id); nodesWarned.delete(e.id); } else if (e.action === 'create' || !deepEqual(n.Attachments, (e.previous as Node | undefined)?.Attachments)) dirty.nodes.add(e.id);
          break;
        }
        default:
          break;
      }
    }
    if (freed) unpark();
    schedulePass();
  };

  const pending = (): boolean => dirty.networks.size + dirty.services.size + dirty.tasks.size + dirty.nodes.size > 0;

  function schedulePass(delay = BATCH_MS): void {
    if (stopped || running || kick || !pending()) return;
    kick = setTimeout(() => void runPass(), delay);
  }

  async function runPass(): Promise<void> {
    kick = undefined;
    if (stopped) return;
    running = true;
    let retryLater = false;
    try {
      await networksPhase();
      await servicesPhase();
      await tasksPhase();
      await nodesPhase();
    } catch (err) {
      log.warn({ err }, 'allocation pass failed; retrying');
      retryLater = true;
    } finally {
      running = false;
    }
    if (pending() && !stopped) schedulePass(retryLater ? RETRY_MS : 0);
    else notifyIdle();
  }

  function take(set: Set<string>): string[] {
    const ids = [...set];
    set.clear();
    return ids;
  }

  async function networksPhase(): Promise<void> {
    const writes: Array<Write<'networks'>> = [];
    for (const id of take(dirty.networks)) {
      const n = store.get('networks', id);
      if (!n) continue;
      const d = core.allocateNetwork(n);
      if (!d.ok) log.error({ network: id, name: n.Spec.Name, err: d.error }, 'network allocation failed');
      else if (d.next) writes.push({ read: n, next: d.next });
    }
    await write('networks', writes, (id) => report(core.observeNetwork(id, store.get('networks', id))), dirty.networks);
  }

  async function servicesPhase(): Promise<void> {
    const writes: Array<Write<'services'>> = [];
    for (const id of take(dirty.services)) {
      const s = store.get('services', id);
      if (!s) continue;
      const d = core.allocateService(s);
      if (!d.ok) log.warn({ service: id, name: s.Spec.Name, err: d.error }, 'service allocation failed; its tasks wait');
      else if (d.next) writes.push({ read: s, next: d.next });
    }
    await write('services', writes, (id) => report(core.observeService(id, store.get('services', id))), dirty.services);
  }

  async function tasksPhase(): Promise<void> {
    const ts = nowIso(now());
    const writes: Array<Write<'tasks'>> = [];
    let allocated = 0;
    for (const id of take(dirty.tasks)) {
      const t = store.get('tasks', id);
      if (!t || !needsAllocation(t)) continue;
      const d = core.allocateTask(t, store.get('services', t.ServiceID), ts);
      if (d.ok) {
        if (d.next) { writes.push({ read: t, next: d.next }); allocated++; }
        continue;
      }
      parkedTasks.add(id);
      // The reason on the task (`docker service ps` shows it), written when it changes.
      if (t.Status.Err !== d.error) writes.push({ read: t, next: { ...t, Status: { ...t.Status, Err: d.error } } });
    }
    if (writes.length) log.debug({ allocated, waiting: writes.length - allocated }, 'task allocations');
    await write('tasks', writes, (id) => report(core.observeTask(id, store.get('tasks', id))), dirty.tasks);
  }

  async function nodesPhase(): Promise<void> {
    const writes: Array<Write<'nodes'>> = [];
    for (const id of take(dirty.nodes)) {
      const n = store.get('nodes', id);
      if (!n) continue;
      const d = core.allocateNode(n);
      if (d.errors.length) {
        parkedNodes.add(id);
        // Once per node until it gets its address: parked nodes are tried again whenever
        // addresses are freed, and a full ingress (a /24 by default, as Docker's) would
        // otherwise log every node that did not fit at every retry.
        if (!nodesWarned.has(id)) { nodesWarned.add(id); for (const err of d.errors) log.warn({ node: id, err }, 'load-balancer address allocation failed (logged once per node)'); }
      } else nodesWarned.delete(id);
      if (d.next) writes.push({ read: n, next: d.next });
    }
    await write('nodes', writes, (id) => report(core.observeNode(id, store.get('nodes', id))), dirty.nodes);
  }

  // Commits in batches; a batch refused for a changed object is redone item
  // by item. Whatever did not land is undone in the core (`undo`) and, when
  // the object changed, decided again on its next event or pass (`again`).
  async function write<K extends Kind>(kind: K, writes: Array<Write<K>>, undo: (id: string) => void, again: Set<string>): Promise<void> {
    if (!writes.length) return;
    const idOf = (w: Write<K>): string => (w.read as { ID: string }).ID;
    const { batches, tooBig } = planBatches(store, writes, (txn, w) => txn.update(kind, w.next));
    for (const { item, error } of tooBig) { log.error({ kind, id: idOf(item), err: error.message }, 'allocation write refused'); undo(idOf(item)); }
    for (let i = 0; i < batches.length; i++) {
      const { txn, items } = batches[i]!;
      try {
        await txn.commit();
        continue;
      } catch (e) {
        if (!(e instanceof ShoalError && (e.kind === 'sequence' || e.kind === 'conflict'))) {
          for (const b of batches.slice(i)) for (const w of b.items) { undo(idOf(w)); again.add(idOf(w)); }
          throw e;
        }
      }
      for (const w of items) {
        try {
          await store.txn().update(kind, w.next).commit();
        } catch (e) {
          undo(idOf(w));
          again.add(idOf(w));
          if (!(e instanceof ShoalError && (e.kind === 'sequence' || e.kind === 'conflict'))) throw e;
        }
      }
    }
  }

  function notifyIdle(): void {
    if (!stopped && (running || kick || pending())) return;
    const w = idleWaiters;
    idleWaiters = [];
    for (const r of w) r();
  }

  // Start (a new leader): the whole state from the store, networks first (the
  // pools the others' addresses belong to), then every pending decision.
  settingsOf(store.first('cluster'));
  for (const n of store.list('networks')) { report(core.observeNetwork(n.ID, n)); if (!isAllocatedNetwork(n)) dirty.networks.add(n.ID); }
  for (const s of store.list('services')) { report(core.observeService(s.ID, s)); dirty.services.add(s.ID); }
  for (const n of store.list('nodes')) { report(core.observeNode(n.ID, n)); dirty.nodes.add(n.ID); }
  for (const t of store.list('tasks')) { report(core.observeTask(t.ID, t)); if (needsAllocation(t)) dirty.tasks.add(t.ID); }
  const unsubscribe = store.subscribe(onEvents);
  schedulePass(0);

  return {
    stop(): void {
      stopped = true;
      unsubscribe();
      if (kick) { clearTimeout(kick); kick = undefined; }
      for (const s of Object.values(dirty)) s.clear();
      notifyIdle();
    },
    settled(): Promise<void> {
      if (stopped ? !running : !running && !kick && !pending()) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
