// The fault test's checker (pure: history and final state in, anomalies out).
// What it proves, per object kind (services, secrets, configs):
// - an acknowledged create is in the final state, unless a remove that was
//   acknowledged or may have happened (unknown) names its ID;
// - an acknowledged remove's object is gone; a definitely failed remove's
//   object is not gone unless another remove explains it;
// - every final object was made by a create that was acknowledged or unknown,
//   and a service's last writer (its faults.req label) was not a failed write;
// - versioned updates form one line per service: no two acknowledged updates
//   share a base version, no acknowledged update based on a version at or
//   after the final writer's base exists (it would have come later and
//   replaced it), and the final spec is what its writer sent;
// - names are unique and every manager shows the same objects;
// - converged: running task containers = desired replicas, no container of a
//   task gone from the store or no longer desired running, no task desired
//   running on a Down node.
import {
  CREATE_LABEL, WRITER_LABEL,
  type Anomaly, type Entry, type FinalState, type Kind, type ManagerView, type ObjectView,
} from './history';

const KINDS: Kind[] = ['service', 'secret', 'config'];
const listOf = (v: ManagerView, k: Kind): ObjectView[] => (k === 'service' ? v.services : k === 'secret' ? v.secrets : v.configs);
const objName = (k: Kind, o: { name: string; id: string }): string => `${k}/${o.name}/${o.id}`;
const isWrite = (e: Entry): boolean => e.op === 'update' || e.op === 'scale';
const mayHaveHappened = (e: Entry): boolean => e.outcome === 'ok' || e.outcome === 'unknown';
const sameList = (a: string[] | undefined, b: string[] | undefined): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

// What the managers must agree on about one object.
function fingerprint(o: ObjectView): string {
  return JSON.stringify([o.id, o.name, o.version, o.labels[CREATE_LABEL] ?? '', o.labels[WRITER_LABEL] ?? '', o.replicas ?? null, o.command ?? null]);
}

export function check(history: readonly Entry[], final: FinalState): Anomaly[] {
  const out: Anomaly[] = [];
  const add = (a: Anomaly): void => { out.push(a); };
  const byId = new Map(history.map((e) => [e.id, e]));

  const readable = final.managers.filter((m) => m.error === undefined);
  for (const m of final.managers) {
    if (m.error !== undefined) add({ kind: 'manager-unreadable', objects: [`manager/${m.host}`], requests: [], detail: `${m.host}: ${m.error}` });
  }
  const ref = readable[0];
  if (!ref) return out;

  // Each manager's own view: names unique; and the same objects as the first.
  for (const m of readable) {
    for (const k of KINDS) {
      const seen = new Map<string, ObjectView>();
      for (const o of listOf(m, k)) {
        const prev = seen.get(o.name);
        if (prev) add({ kind: 'duplicate-name', objects: [objName(k, prev), objName(k, o)], requests: [prev.labels[CREATE_LABEL], o.labels[CREATE_LABEL]].filter((x): x is string => !!x), detail: `${m.host} shows two ${k}s named ${o.name}` });
        else seen.set(o.name, o);
      }
      if (m === ref) continue;
      const mine = new Map(listOf(m, k).map((o) => [o.id, fingerprint(o)]));
      const theirs = new Map(listOf(ref, k).map((o) => [o.id, fingerprint(o)]));
      const differ = [...new Set([...mine.keys(), ...theirs.keys()])].filter((id) => mine.get(id) !== theirs.get(id)).sort();
      if (differ.length) {
        add({ kind: 'managers-disagree', objects: differ.map((id) => `${k}/${id}`), requests: [], detail: `${m.host} and ${ref.host} differ on ${differ.map((id) => `${id}: ${mine.get(id) ?? 'absent'} vs ${theirs.get(id) ?? 'absent'}`).join('; ')}` });
      }
    }
  }

  for (const k of KINDS) {
    const objects = listOf(ref, k);
    const present = new Map(objects.map((o) => [o.id, o]));
    const ofKind = history.filter((e) => e.kind === k);
    const removesOf = (id: string | undefined): Entry[] => (id ? ofKind.filter((e) => e.op === 'remove' && e.target === id) : []);

    // Where every final object came from, and (services) who wrote it last.
    for (const o of objects) {
      const c = byId.get(o.labels[CREATE_LABEL] ?? '');
      if (!c || c.op !== 'create' || c.kind !== k || c.name !== o.name) {
        add({ kind: 'unexplained-object', objects: [objName(k, o)], requests: c ? [c.id] : [], detail: `no recorded create of ${k} ${o.name} carries its ${CREATE_LABEL} label "${o.labels[CREATE_LABEL] ?? ''}"` });
        continue;
      }
      if (c.outcome === 'fail') add({ kind: 'failed-write-visible', objects: [objName(k, o)], requests: [c.id], detail: `create ${c.id} was refused (${c.status ?? '-'} ${c.body}) yet its ${k} exists` });
      if (c.outcome === 'ok' && c.createdId !== undefined && c.createdId !== o.id) add({ kind: 'unexplained-object', objects: [objName(k, o)], requests: [c.id], detail: `create ${c.id} answered ID ${c.createdId}, but the ${k} carrying its label has ID ${o.id}` });
      if (k !== 'service') continue;

      const w = byId.get(o.labels[WRITER_LABEL] ?? '');
      const writerOk = w !== undefined && w.kind === k && ((w.op === 'create' && w === c) || (isWrite(w) && w.target === o.id));
      if (!w || !writerOk) {
        add({ kind: 'unexplained-object', objects: [objName(k, o)], requests: w ? [w.id] : [], detail: `its ${WRITER_LABEL} label "${o.labels[WRITER_LABEL] ?? ''}" names no create or update of this service` });
        continue;
      }
      if (w !== c && w.outcome === 'fail') add({ kind: 'failed-write-visible', objects: [objName(k, o)], requests: [w.id], detail: `${w.op} ${w.id} was refused (${w.status ?? '-'} ${w.body}) yet the final spec is its` });
      if (w.sent && (w.sent.replicas !== o.replicas || !sameList(w.sent.command, o.command))) {
        add({ kind: 'spec-mismatch', objects: [objName(k, o)], requests: [w.id], detail: `${w.id} sent replicas ${w.sent.replicas} command ${JSON.stringify(w.sent.command)}, the final spec has replicas ${o.replicas} command ${JSON.stringify(o.command)}` });
      }
      // An acknowledged update based on a version at or after the final
      // writer's base was applied after it (the store checks the version): the
      // final spec cannot be the writer's.
      const base = w === c ? -1 : w.baseVersion ?? -1;
      const later = ofKind.filter((u) => u !== w && isWrite(u) && u.target === o.id && u.outcome === 'ok' && (u.baseVersion ?? -1) >= base);
      if (later.length) {
        add({ kind: 'lost-update', objects: [objName(k, o)], requests: [w.id, ...later.map((u) => u.id)], detail: `the final spec is ${w.id}'s (${w.op}, ${w.outcome}, base version ${w === c ? 'none' : base}), but acknowledged ${later.map((u) => `${u.id} (base ${u.baseVersion})`).join(', ')} came after it` });
      }
    }

    // Every acknowledged create is there, unless a remove may have taken it.
    for (const c of ofKind.filter((e) => e.op === 'create' && e.outcome === 'ok')) {
      const there = objects.some((o) => o.labels[CREATE_LABEL] === c.id);
      if (there) continue;
      const excuses = c.createdId !== undefined
        ? removesOf(c.createdId).filter(mayHaveHappened)
        : ofKind.filter((e) => e.op === 'remove' && e.name === c.name && e.end > c.start && mayHaveHappened(e));
      if (excuses.length === 0) add({ kind: 'lost-create', objects: [`${k}/${c.name}/${c.createdId ?? '?'}`], requests: [c.id, ...removesOf(c.createdId).map((r) => r.id)], detail: `create ${c.id} was acknowledged (ID ${c.createdId ?? 'unread'}) and is not in the final state; no remove that may have happened names it` });
    }

    // Removes: acknowledged ones took effect; definitely failed ones did not.
    for (const r of ofKind.filter((e) => e.op === 'remove' && e.target !== undefined)) {
      const o = present.get(r.target!);
      if (r.outcome === 'ok' && o) add({ kind: 'resurrected', objects: [objName(k, o)], requests: [r.id], detail: `remove ${r.id} was acknowledged, yet ${k} ${r.target} is in the final state` });
      if (r.outcome === 'fail' && !o && !removesOf(r.target).some((x) => x !== r && mayHaveHappened(x))) {
        add({ kind: 'failed-remove-applied', objects: [`${k}/${r.name}/${r.target}`], requests: [r.id], detail: `remove ${r.id} was refused (${r.status ?? '-'} ${r.body}), no other remove may have happened, yet ${k} ${r.target} is gone` });
      }
    }

    // One line of versions per service: one base version, one acknowledged update.
    const byBase = new Map<string, Entry[]>();
    for (const u of ofKind.filter((e) => isWrite(e) && e.outcome === 'ok' && e.target !== undefined && e.baseVersion !== undefined)) {
      const key = `${u.target}@${u.baseVersion}`;
      byBase.set(key, [...(byBase.get(key) ?? []), u]);
    }
    for (const [key, us] of byBase) {
      if (us.length > 1) add({ kind: 'same-base-version', objects: [`${k}/${us[0]!.name}/${us[0]!.target}`], requests: us.map((u) => u.id), detail: `${us.length} acknowledged updates based on ${key}: ${us.map((u) => u.id).join(', ')} (the store must refuse all but one)` });
    }
  }

  // Convergence, on the first manager's view and every host's containers.
  for (const h of final.unreadHosts) add({ kind: 'not-converged', objects: [`host/${h}`], requests: [], detail: `${h}'s dockerd did not answer: its containers are unknown` });
  const tasks = new Map(ref.tasks.map((t) => [t.id, t]));
  const services = new Map(ref.services.map((s) => [s.id, s]));
  for (const s of ref.services) {
    const running = final.containers.filter((c) => c.serviceId === s.id && c.running);
    if (running.length !== (s.replicas ?? 0)) {
      add({ kind: 'not-converged', objects: [objName('service', s)], requests: [s.labels[WRITER_LABEL] ?? ''].filter(Boolean), detail: `${running.length} running task containers (${running.map((c) => `${c.host}:${c.taskId}`).join(', ') || 'none'}), ${s.replicas} replicas wanted` });
    }
  }
  for (const c of final.containers) {
    const t = tasks.get(c.taskId);
    const why = !t ? 'its task is not in the store' : c.running && t.desired !== 'running' ? `its task is desired ${t.desired}` : !services.has(c.serviceId) ? 'its service is gone' : undefined;
    if (why) add({ kind: 'orphan-container', objects: [`container/${c.host}/${c.id.slice(0, 12)}`, `task/${c.taskId}`], requests: [], detail: `${c.running ? 'running' : 'stopped'} container on ${c.host}: ${why}` });
  }
  const nodes = new Map(ref.nodes.map((n) => [n.id, n]));
  for (const t of ref.tasks) {
    const n = nodes.get(t.nodeId);
    if (t.desired === 'running' && n && n.state === 'down') add({ kind: 'task-on-down-node', objects: [`task/${t.id}`, `node/${n.hostname}`], requests: [], detail: `task ${t.id} of service ${t.serviceId} is desired running on Down node ${n.hostname}` });
  }
  return out;
}

// Failover figures from the history (pure): for each fault that hit the
// leader, the time from the fault being in place to the end of the first
// acknowledged write sent after that.
// at: when the round began to apply its fault; inPlace: when it was in place
// (a host's power-off takes 0.4-1.4 s here; marks of older runs lack it);
// quorumLost: the window in which two of three managers were down or cut off.
export interface FaultMark { round: number; kind: string; target: string; hitLeader: boolean; at: number; inPlace?: number; quorumLost?: { from: number; to: number } }
export interface Failover { samples: number[]; median?: number; worst?: number; unknowns: number }

// No write can commit without a quorum of etcd members: an acknowledged write
// sent after the quorum was lost and answered before it came back was not
// committed (pure).
export function quorumAnomalies(history: readonly Entry[], faults: readonly FaultMark[]): Anomaly[] {
  const out: Anomaly[] = [];
  for (const f of faults) {
    const w = f.quorumLost;
    if (!w) continue;
    const acked = history.filter((e) => e.outcome === 'ok' && e.start >= w.from && e.end <= w.to);
    for (const e of acked) {
      out.push({ kind: 'ack-without-quorum', objects: [`${e.kind}/${e.name}${e.target ? `/${e.target}` : ''}`], requests: [e.id], detail: `round ${f.round} (${f.kind} ${f.target}): ${e.op} ${e.id} through ${e.manager} was acknowledged (${e.status ?? '-'}) between ${Math.round(e.start)} and ${Math.round(e.end)} ms, inside the quorum loss ${Math.round(w.from)}-${Math.round(w.to)} ms` });
    }
  }
  return out;
}

// After a quorum loss: the time from the heal to the end of the first
// acknowledged write sent after it (pure).
export function quorumRecovery(history: readonly Entry[], faults: readonly FaultMark[]): number[] {
  const samples: number[] = [];
  for (const f of faults) {
    if (!f.quorumLost) continue;
    const healed = f.quorumLost.to;
    const first = history.filter((e) => e.outcome === 'ok' && e.start >= healed).sort((a, b) => a.end - b.end)[0];
    if (first) samples.push(first.end - healed);
  }
  return samples;
}

export function failover(history: readonly Entry[], faults: readonly FaultMark[]): Failover {
  const samples: number[] = [];
  for (const f of faults.filter((x) => x.hitLeader)) {
    const from = f.inPlace ?? f.at;
    const first = history.filter((e) => e.outcome === 'ok' && e.start >= from).sort((a, b) => a.end - b.end)[0];
    if (first) samples.push(first.end - from);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    samples,
    ...(sorted.length ? { median: sorted[Math.floor((sorted.length - 1) / 2)]!, worst: sorted[sorted.length - 1]! } : {}),
    unknowns: history.filter((e) => e.outcome === 'unknown').length,
  };
}
