// The fault test's clients: each, until told to stop, sends one write at a
// time (create, update, scale, remove of services, secrets and configs) to a
// random manager's Docker API and records it. Names come from small shared
// pools so that clients race on the same objects.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { answerOf, call, json } from './http';
import { CREATE_LABEL, WRITER_LABEL, type Entry, type Kind, type Op } from './history';
import type { Rng } from './prng';

export const IMAGE = 'shoal-test/busybox:1';
const REQUEST_MS = 10_000;
const INSPECT_MS = 5_000;
const POOL = { service: 6, secret: 4, config: 4 } as const;
const PREFIX = { service: 'svc', secret: 'sec', config: 'cfg' } as const;
const PATH = { service: 'services', secret: 'secrets', config: 'configs' } as const;

export interface ClientOptions {
  client: number;
  rng: Rng;
  managers: { host: string; socket: string }[];
  record: (e: Entry) => void;
  stopped: () => boolean;
  now?: () => number;
}

// again: after an acknowledged update, the same base version once more (a
// stale write: the store must refuse it with "update out of sequence").
type Plan = { kind: Kind; op: Op; again?: boolean };
const PLANS: [number, Plan][] = [
  [22, { kind: 'service', op: 'create' }],
  [16, { kind: 'service', op: 'update' }],
  [4, { kind: 'service', op: 'update', again: true }],
  [20, { kind: 'service', op: 'scale' }],
  [10, { kind: 'service', op: 'remove' }],
  [8, { kind: 'secret', op: 'create' }],
  [6, { kind: 'secret', op: 'remove' }],
  [8, { kind: 'config', op: 'create' }],
  [6, { kind: 'config', op: 'remove' }],
];

function choose(rng: Rng): Plan {
  const total = PLANS.reduce((s, [w]) => s + w, 0);
  let x = rng.next() * total;
  for (const [w, p] of PLANS) { if ((x -= w) < 0) return p; }
  return PLANS[0]![1];
}

export async function runClient(o: ClientOptions): Promise<void> {
  const now = o.now ?? (() => performance.now());
  let n = 0;
  while (!o.stopped()) {
    const m = o.rng.pick(o.managers);
    const plan = choose(o.rng);
    const name = `${PREFIX[plan.kind]}-${o.rng.int(0, POOL[plan.kind] - 1)}`;
    const id = `c${o.client}-${++n}`;
    const base = { id, client: o.client, op: plan.op, kind: plan.kind, name, manager: m.host };
    // What to send, or nothing when the object to change is not there.
    let method = 'POST';
    let path: string;
    let body: unknown;
    let extra: Partial<Entry> = {};
    if (plan.op === 'create') {
      path = `/${PATH[plan.kind]}/create`;
      const labels = { [CREATE_LABEL]: id, [WRITER_LABEL]: id };
      if (plan.kind === 'service') {
        const replicas = o.rng.int(1, 2);
        const command = ['sleep', String(3000 + o.rng.int(0, 999))];
        body = { Name: name, Labels: labels, TaskTemplate: { ContainerSpec: { Image: IMAGE, Command: command } }, Mode: { Replicated: { Replicas: replicas } } };
        extra = { sent: { replicas, command } };
      } else {
        body = { Name: name, Labels: { [CREATE_LABEL]: id }, Data: Buffer.from(`${id}\n`).toString('base64') };
      }
    } else {
      const seen = await call(m.socket, 'GET', `/${PATH[plan.kind]}/${name}`, undefined, INSPECT_MS);
      const obj = seen.status === 200 ? json(seen) : undefined;
      if (!obj?.ID) { await sleep(o.rng.int(50, 300)); continue; }
      if (plan.op === 'remove') {
        method = 'DELETE';
        path = `/${PATH[plan.kind]}/${obj.ID}`;
        extra = { target: obj.ID };
      } else {
        const spec = structuredClone(obj.Spec ?? {});
        spec.Labels = { ...(spec.Labels ?? {}), [WRITER_LABEL]: id };
        if (plan.op === 'scale') spec.Mode = { Replicated: { Replicas: o.rng.int(0, 2) } };
        else spec.TaskTemplate = { ...spec.TaskTemplate, ContainerSpec: { ...spec.TaskTemplate?.ContainerSpec, Command: ['sleep', String(3000 + o.rng.int(0, 999))] } };
        const version = Number(obj.Version?.Index);
        path = `/services/${obj.ID}/update?version=${version}`;
        body = spec;
        extra = { target: obj.ID, baseVersion: version, sent: { replicas: spec.Mode?.Replicated?.Replicas, command: spec.TaskTemplate?.ContainerSpec?.Command } };
      }
    }
    const send = async (entry: typeof base, sentBody: unknown, more: Partial<Entry>): Promise<Entry> => {
      const start = now();
      const r = await call(m.socket, method, path, sentBody, REQUEST_MS);
      const e: Entry = { ...entry, ...more, start, end: now(), ...answerOf(r, plan.op === 'create') };
      o.record(e);
      return e;
    };
    const first = await send(base, body, extra);
    if (plan.again && first.outcome === 'ok') {
      const againId = `c${o.client}-${++n}`;
      const spec = structuredClone(body) as any;
      spec.Labels = { ...spec.Labels, [WRITER_LABEL]: againId };
      const command = ['sleep', String(3000 + o.rng.int(0, 999))];
      spec.TaskTemplate = { ...spec.TaskTemplate, ContainerSpec: { ...spec.TaskTemplate?.ContainerSpec, Command: command } };
      await send({ ...base, id: againId }, spec, { ...extra, sent: { replicas: spec.Mode?.Replicated?.Replicas, command } });
    }
    await sleep(o.rng.int(100, 600));
  }
}
