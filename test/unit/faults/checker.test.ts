import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { check, failover, quorumAnomalies, quorumRecovery } from '../../faults/checker';
import { CREATE_LABEL, WRITER_LABEL, type AnomalyKind, type Entry, type FinalState, type ManagerView, type ObjectView } from '../../faults/history';
import { rng } from '../../faults/prng';
import { planRound } from '../../faults/nemesis';

// Hand-made histories and final states, one per anomaly kind, and the clean
// cases next to them that must pass.
let t = 0;
function e(p: Partial<Entry> & Pick<Entry, 'id' | 'op' | 'outcome'>): Entry {
  t += 10;
  return { client: 1, kind: 'service', name: 'svc-0', manager: 'host1', start: t, end: t + 5, body: '', ...p };
}
const svc = (id: string, create: string, writer: string, extra: Partial<ObjectView> = {}): ObjectView =>
  ({ id, name: 'svc-0', version: 10, labels: { [CREATE_LABEL]: create, [WRITER_LABEL]: writer }, replicas: 1, command: ['sleep', '3000'], ...extra });
const sent = { replicas: 1, command: ['sleep', '3000'] };

function view(host: string, services: ObjectView[], more: Partial<ManagerView> = {}): ManagerView {
  return {
    host, services, secrets: [], configs: [],
    tasks: services.flatMap((s) => Array.from({ length: s.replicas ?? 0 }, (_, i) => ({ id: `${s.id}-t${i}`, serviceId: s.id, nodeId: 'n1', desired: 'running', state: 'running' }))),
    nodes: [{ id: 'n1', hostname: 'host1', state: 'ready' }],
    ...more,
  };
}
// Every manager the same, and one running container per task: converged.
function final(services: ObjectView[], more: Partial<ManagerView> = {}): FinalState {
  const managers = ['host1', 'host2', 'host3'].map((h) => view(h, services, more));
  return {
    managers,
    containers: managers[0]!.tasks.map((tk) => ({ host: 'host1', id: `ct-${tk.id}`, taskId: tk.id, serviceId: tk.serviceId, running: true })),
    unreadHosts: [],
  };
}
const kinds = (h: Entry[], f: FinalState): AnomalyKind[] => check(h, f).map((a) => a.kind).sort();

describe('fault checker', () => {
  test('a clean history: creates, a versioned line of updates, a remove', () => {
    const h = [
      e({ id: 'c1-1', op: 'create', outcome: 'ok', createdId: 'S1', sent }),
      e({ id: 'c1-2', op: 'update', outcome: 'ok', target: 'S1', baseVersion: 10, sent: { replicas: 1, command: ['sleep', '3001'] } }),
      e({ id: 'c2-1', op: 'scale', outcome: 'fail', status: 500, body: 'update out of sequence', target: 'S1', baseVersion: 10, sent: { replicas: 2, command: ['sleep', '3000'] } }),
      e({ id: 'c2-2', op: 'scale', outcome: 'ok', target: 'S1', baseVersion: 12, sent: { replicas: 2, command: ['sleep', '3001'] } }),
      e({ id: 'c1-3', op: 'create', name: 'svc-1', outcome: 'ok', createdId: 'S2', sent }),
      e({ id: 'c2-3', op: 'remove', name: 'svc-1', outcome: 'ok', target: 'S2' }),
      e({ id: 'c1-4', op: 'create', name: 'svc-2', outcome: 'unknown', sent }),      // did not happen
      e({ id: 'c1-5', op: 'create', name: 'svc-3', outcome: 'unknown', sent }),      // happened
      e({ id: 'c2-4', op: 'create', outcome: 'fail', status: 409, sent }),           // name taken
    ];
    const s1 = svc('S1', 'c1-1', 'c2-2', { version: 14, replicas: 2, command: ['sleep', '3001'] });
    const s3 = svc('S3', 'c1-5', 'c1-5', { name: 'svc-3' });
    assert.deepEqual(check(h, final([s1, s3])), []);
  });

  test('lost-create: an acknowledged create is missing; a remove that may have happened excuses it', () => {
    const h = [e({ id: 'c1-1', op: 'create', outcome: 'ok', createdId: 'S1', sent })];
    assert.deepEqual(kinds(h, final([])), ['lost-create']);
    assert.deepEqual(kinds([...h, e({ id: 'c2-1', op: 'remove', outcome: 'unknown', target: 'S1' })], final([])), []);
    assert.deepEqual(kinds([...h, e({ id: 'c2-1', op: 'remove', outcome: 'fail', target: 'S1', status: 404 })], final([])), ['failed-remove-applied', 'lost-create']);
    const a = check(h, final([]))[0]!;
    assert.deepEqual(a.requests, ['c1-1']);
    assert.match(a.objects[0]!, /service\/svc-0\/S1/);
  });

  test('lost-create of a secret and of a config', () => {
    const h = [
      e({ id: 'c1-1', op: 'create', kind: 'secret', name: 'sec-0', outcome: 'ok', createdId: 'X1' }),
      e({ id: 'c1-2', op: 'create', kind: 'config', name: 'cfg-0', outcome: 'ok', createdId: 'Y1' }),
    ];
    assert.deepEqual(kinds(h, final([])), ['lost-create', 'lost-create']);
    const f = final([], { secrets: [{ id: 'X1', name: 'sec-0', version: 3, labels: { [CREATE_LABEL]: 'c1-1' } }], configs: [{ id: 'Y1', name: 'cfg-0', version: 4, labels: { [CREATE_LABEL]: 'c1-2' } }] });
    assert.deepEqual(kinds(h, f), []);
  });

  test('resurrected: an acknowledged remove\'s object is back', () => {
    const h = [e({ id: 'c1-1', op: 'create', outcome: 'ok', createdId: 'S1', sent }), e({ id: 'c1-2', op: 'remove', outcome: 'ok', target: 'S1' })];
    assert.deepEqual(kinds(h, final([svc('S1', 'c1-1', 'c1-1')])), ['resurrected']);
  });

  test('failed-write-visible: a refused create or update shows', () => {
    const created = [e({ id: 'c1-1', op: 'create', outcome: 'fail', status: 400, sent })];
    assert.deepEqual(kinds(created, final([svc('S1', 'c1-1', 'c1-1')])), ['failed-write-visible']);
    const updated = [
      e({ id: 'c1-1', op: 'create', outcome: 'ok', createdId: 'S1', sent }),
      e({ id: 'c1-2', op: 'update', outcome: 'fail', status: 500, body: 'update out of sequence', target: 'S1', baseVersion: 10, sent }),
    ];
    assert.deepEqual(kinds(updated, final([svc('S1', 'c1-1', 'c1-2')])), ['failed-write-visible']);
  });

  test('unexplained-object: no recorded create made it', () => {
    assert.deepEqual(kinds([], final([svc('S9', 'zz-1', 'zz-1')])), ['unexplained-object']);
  });

  test('same-base-version: two acknowledged updates from one version', () => {
    const h = [
      e({ id: 'c1-1', op: 'create', outcome: 'ok', createdId: 'S1', sent }),
      e({ id: 'c1-2', op: 'update', outcome: 'ok', target: 'S1', baseVersion: 10, sent }),
      e({ id: 'c2-1', op: 'scale', client: 2, outcome: 'ok', target: 'S1', baseVersion: 10, sent }),
    ];
    const ks = kinds(h, final([svc('S1', 'c1-1', 'c2-1')]));
    assert.deepEqual(ks, ['lost-update', 'same-base-version']);
    const a = check(h, final([svc('S1', 'c1-1', 'c2-1')])).find((x) => x.kind === 'same-base-version')!;
    assert.deepEqual(a.requests.sort(), ['c1-2', 'c2-1']);
  });

  test('lost-update: the final spec is older than an acknowledged update', () => {
    const h = [
      e({ id: 'c1-1', op: 'create', outcome: 'ok', createdId: 'S1', sent }),
      e({ id: 'c1-2', op: 'update', outcome: 'ok', target: 'S1', baseVersion: 10, sent }),
      e({ id: 'c1-3', op: 'update', outcome: 'ok', target: 'S1', baseVersion: 12, sent }),
    ];
    assert.deepEqual(kinds(h, final([svc('S1', 'c1-1', 'c1-2')])), ['lost-update']);
    assert.deepEqual(kinds(h, final([svc('S1', 'c1-1', 'c1-1')])), ['lost-update']); // still the create's spec
    assert.deepEqual(kinds(h, final([svc('S1', 'c1-1', 'c1-3')])), []);
    // An unknown update based on an older version cannot be the last writer either.
    const u = [...h, e({ id: 'c2-1', op: 'update', outcome: 'unknown', target: 'S1', baseVersion: 11, sent })];
    assert.deepEqual(kinds(u, final([svc('S1', 'c1-1', 'c2-1')])), ['lost-update']);
    // ... but one based on the latest may be.
    const v = [...h, e({ id: 'c2-1', op: 'update', outcome: 'unknown', target: 'S1', baseVersion: 13, sent })];
    assert.deepEqual(kinds(v, final([svc('S1', 'c1-1', 'c2-1')])), []);
  });

  test('spec-mismatch: the writer\'s label with another spec (half applied)', () => {
    const h = [e({ id: 'c1-1', op: 'create', outcome: 'ok', createdId: 'S1', sent }), e({ id: 'c1-2', op: 'scale', outcome: 'ok', target: 'S1', baseVersion: 10, sent: { replicas: 2, command: ['sleep', '3000'] } })];
    assert.deepEqual(kinds(h, final([svc('S1', 'c1-1', 'c1-2', { replicas: 1 })])), ['spec-mismatch']);
  });

  test('duplicate-name, managers-disagree, manager-unreadable', () => {
    const h = [
      e({ id: 'c1-1', op: 'create', outcome: 'ok', createdId: 'S1', sent }),
      e({ id: 'c2-1', op: 'create', client: 2, outcome: 'unknown', sent }),
    ];
    assert.deepEqual(kinds(h, final([svc('S1', 'c1-1', 'c1-1'), svc('S2', 'c2-1', 'c2-1')])), ['duplicate-name', 'duplicate-name', 'duplicate-name']);
    const f = final([svc('S1', 'c1-1', 'c1-1')]);
    f.managers[2]!.services = [svc('S1', 'c1-1', 'c1-1', { version: 9 })];
    assert.deepEqual(kinds(h.slice(0, 1), f), ['managers-disagree']);
    f.managers[2] = { ...f.managers[2]!, error: 'GET /services: no answer' };
    assert.deepEqual(kinds(h.slice(0, 1), f), ['manager-unreadable']);
  });

  test('not-converged, orphan-container, task-on-down-node', () => {
    const h = [e({ id: 'c1-1', op: 'create', outcome: 'ok', createdId: 'S1', sent: { replicas: 2, command: ['sleep', '3000'] } })];
    const s = svc('S1', 'c1-1', 'c1-1', { replicas: 2 });
    const f = final([s]);
    assert.deepEqual(kinds(h, f), []);
    f.containers = f.containers.slice(1);
    assert.deepEqual(kinds(h, f), ['not-converged']);
    const g = final([s]);
    g.containers.push({ host: 'host4', id: 'stray', taskId: 'gone', serviceId: 'S1', running: true });
    assert.deepEqual(kinds(h, g), ['not-converged', 'orphan-container']);
    const d = final([s], { nodes: [{ id: 'n1', hostname: 'host1', state: 'down' }] });
    assert.deepEqual(kinds(h, d), ['task-on-down-node', 'task-on-down-node']);
    // A stopped container of a task kept in history (desired shutdown) is fine.
    const k = final([s]);
    for (const m of k.managers) m.tasks.push({ id: 'old', serviceId: 'S1', nodeId: 'n1', desired: 'shutdown', state: 'shutdown' });
    k.containers.push({ host: 'host1', id: 'ct-old', taskId: 'old', serviceId: 'S1', running: false });
    assert.deepEqual(kinds(h, k), []);
    k.containers[k.containers.length - 1]!.running = true;
    assert.deepEqual(kinds(h, k), ['not-converged', 'orphan-container']);
  });

  test('failover: fault on the leader to the first acknowledged write sent after it', () => {
    const h = [
      { ...e({ id: 'a', op: 'create', outcome: 'ok' }), start: 90, end: 95 },
      { ...e({ id: 'b', op: 'create', outcome: 'unknown' }), start: 101, end: 500 },
      { ...e({ id: 'c', op: 'create', outcome: 'ok' }), start: 300, end: 350 },
      { ...e({ id: 'd', op: 'create', outcome: 'ok' }), start: 1100, end: 1120 },
    ];
    const f = failover(h, [
      { round: 1, kind: 'kill-host', target: 'host1', hitLeader: true, at: 100 },
      { round: 2, kind: 'partition', target: 'host4', hitLeader: false, at: 600 },
      { round: 3, kind: 'kill-daemon', target: 'host2', hitLeader: true, at: 1000 },
    ]);
    assert.deepEqual(f.samples, [250, 120]);
    assert.equal(f.median, 120);
    assert.equal(f.worst, 250);
    assert.equal(f.unknowns, 1);
    // Counted from the fault in place when the mark says: a write sent while the power-off ran is no sample.
    const g = failover(h, [{ round: 1, kind: 'kill-host', target: 'host1', hitLeader: true, at: 100, inPlace: 310 }]);
    assert.deepEqual(g.samples, [810]);
  });

  test('ack-without-quorum: an acknowledged write sent and answered inside a quorum loss', () => {
    const h = [
      { ...e({ id: 'a', op: 'create', outcome: 'ok' }), start: 90, end: 1050 },     // sent before the loss
      { ...e({ id: 'b', op: 'create', outcome: 'unknown' }), start: 1100, end: 1900 }, // no ack: right
      { ...e({ id: 'c', op: 'update', outcome: 'ok', target: 'S1' }), start: 1200, end: 1300 }, // impossible
      { ...e({ id: 'd', op: 'create', outcome: 'ok' }), start: 1900, end: 2100 },   // answered after the heal began
      { ...e({ id: 'f', op: 'create', outcome: 'ok' }), start: 2500, end: 2600 },
    ];
    const marks = [
      { round: 1, kind: 'kill-host', target: 'host1', hitLeader: true, at: 100 },
      { round: 2, kind: 'lose-quorum', target: 'host1+host2', hitLeader: false, at: 950, quorumLost: { from: 1000, to: 2000 } },
    ];
    const a = quorumAnomalies(h, marks);
    assert.deepEqual(a.map((x) => [x.kind, x.requests]), [['ack-without-quorum', ['c']]]);
    assert.deepEqual(quorumRecovery(h, marks), [600]);
    // The quorum loss is no failover sample (its time includes the hold).
    assert.deepEqual(failover(h, marks).samples, [1200]);
  });

  test('the nemesis: a quorum loss hurts two distinct managers', () => {
    const l = { hosts: ['host1', 'host2', 'host3', 'host4', 'host5'], managers: ['host1', 'host2', 'host3'] };
    const r = rng(7);
    for (let i = 1; i <= 30; i++) {
      const q = planRound(r, l, i, 'lose-quorum');
      assert.ok(l.managers.includes(q.target) && l.managers.includes(q.second!) && q.target !== q.second);
      assert.ok(q.how === 'kill-host' || q.how === 'partition');
    }
  });

  test('the nemesis replays from its seed and hurts etcd only on managers', () => {
    const l = { hosts: ['host1', 'host2', 'host3', 'host4', 'host5'], managers: ['host1', 'host2', 'host3'] };
    const a = rng(42); const b = rng(42);
    const ra = Array.from({ length: 30 }, (_, i) => planRound(a, l, i + 1));
    assert.deepEqual(ra, Array.from({ length: 30 }, (_, i) => planRound(b, l, i + 1)));
    for (const r of ra) if (r.kind === 'kill-etcd') assert.ok(l.managers.includes(r.target));
    assert.ok(ra.every((r) => r.holdMs >= 3_000 && r.holdMs <= 10_000));
  });
});
