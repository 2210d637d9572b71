import type { ServerResponse } from 'node:http';
import type { EngineClient } from '../../engine/client';
import type { Task } from '../../model/types';
import { taskStateRank } from '../../model/types';
import { internal, invalid, NOT_A_MANAGER, unavailable } from '../../common/errors';
import { parseIsoMs } from '../../common/time';
import { resolveObject } from '../../manager/controlapi/resolve';
import type { Store } from '../../store/store';
import { LocalLogSource, type LogLine, type LogSource, type TaskLogOptions } from '../../agent/log-source';
import type { Router } from '../router';
import type { SwarmMembership } from './membership';
import { boolValue } from '../../common/go/query';

// `docker service logs` and task logs: the lines of the tasks' containers,
// written exactly as moby's write_log_stream does (api/server/httputils):
// stdcopy frames unless the service has a TTY, one frame per message,
// `[<RFC3339Nano ts> ][<details> ]<line>`.

// Moby sends this for API 1.41 (1.42+ says multiplexed-stream when not TTY).
export const RAW_STREAM = 'application/vnd.docker.raw-stream';

export interface LogRouteDeps {
  engine?: EngineClient;       // this host's engine: the default source reads task containers from it
  source?: LogSource;          // replaces the default (tests; other nodes' agents later)
  swarm?: Pick<SwarmMembership, 'control'>; // the cluster state while this node is a manager...
  store?: Store;               // ...or a fixed store and node ID (one-node set-ups, tests)
  nodeId?: string;
}

export interface LogQuery extends TaskLogOptions {
  follow: boolean;
  timestamps: boolean;
  details: boolean;
}

export function registerLogRoutes(router: Router, deps: LogRouteDeps): void {
  router.on('GET', '/services/:id/logs', async (req, res) => {
    const opts = parseLogQuery(req.query);
    const { store, nodeId } = cluster(deps);
    const svc = resolveObject('service', req.params.id!, store.list('services'), (s) => s.Spec.Name, (id) => store.get('services', id));
    const serviceId = svc.ID;
    await streamLogs(res, opts, {
      store,
      source: sourceFor(deps, nodeId),
      tty: !!svc.Spec.TaskTemplate?.ContainerSpec?.TTY,
      tasks: () => store.tasksOfService(serviceId),
      wants: (t) => t.ServiceID === serviceId,
      // Follow ends when the service is gone and its last stream has ended.
      over: (_streamed, active) => active === 0 && !store.get('services', serviceId),
    });
    return undefined;
  });

  router.on('GET', '/tasks/:id/logs', async (req, res) => {
    const opts = parseLogQuery(req.query);
    const { store, nodeId } = cluster(deps);
    const task = resolveObject('task', req.params.id!, store.list('tasks'), () => undefined, (id) => store.get('tasks', id));
    const taskId = task.ID;
    await streamLogs(res, opts, {
      store,
      source: sourceFor(deps, nodeId),
      tty: !!task.Spec.ContainerSpec?.TTY,
      tasks: () => { const t = store.get('tasks', taskId); return t ? [t] : []; },
      wants: (t) => t.ID === taskId,
      // Follow ends with the task's container, or when it can no longer start.
      over: (streamed, active) => {
        if (active) return false;
        const t = store.get('tasks', taskId);
        return streamed > 0 || !t || taskStateRank(t.Status.State) > taskStateRank('running');
      },
    });
    return undefined;
  });
}

export function parseLogQuery(q: URLSearchParams): LogQuery {
  const opts: LogQuery = {
    stdout: boolValue(q, 'stdout'),
    stderr: boolValue(q, 'stderr'),
    follow: boolValue(q, 'follow'),
    timestamps: boolValue(q, 'timestamps'),
    details: boolValue(q, 'details'),
  };
  if (!opts.stdout && !opts.stderr) throw invalid('Bad parameters: you must choose at least one stream');
  for (const k of ['since', 'until'] as const) {
    const v = q.get(k);
    if (!v) continue;
    if (!/^\d+(\.\d{1,9})?$/.test(v)) throw invalid(`could not parse ${k} timestamp: ${JSON.stringify(v)} is not a unix timestamp`);
    opts[k] = v;
  }
  const tail = q.get('tail');
  if (tail && tail !== 'all') {
    if (!/^\d+$/.test(tail)) throw invalid(`tail value must be a positive integer: ${JSON.stringify(tail)}`);
    opts.tail = String(Number(tail));
  }
  return opts;
}

function cluster(deps: LogRouteDeps): { store: Store; nodeId: string } {
  if (deps.swarm) {
    const c = deps.swarm.control();
    return { store: c.ctx.store, nodeId: c.ctx.localNodeId };
  }
  if (deps.store && deps.nodeId) return { store: deps.store, nodeId: deps.nodeId };
  throw unavailable(NOT_A_MANAGER);
}

function sourceFor(deps: LogRouteDeps, nodeId: string): LogSource {
  if (deps.source) return deps.source;
  if (deps.engine) return new LocalLogSource(deps.engine, nodeId);
  throw internal('no log source configured');
}

interface Selection {
  store: Store;
  source: LogSource;
  tty: boolean;
  tasks(): Task[];
  wants(t: Task): boolean;
  over(streamed: number, active: number): boolean;
}

async function streamLogs(res: ServerResponse, opts: LogQuery, sel: Selection): Promise<void> {
  const abort = new AbortController();
  res.on('close', () => abort.abort()); // the client went away
  res.writeHead(200, { 'Content-Type': RAW_STREAM });
  res.flushHeaders();
  const out = new LogWriter(res, !sel.tty, abort.signal);

  const copy = async (t: Task): Promise<void> => {
    const details = opts.details ? Buffer.from(detailsOf(t) + ' ') : undefined;
    try {
      for await (const l of sel.source.taskLogs(t, opts, abort.signal)) {
        if (abort.signal.aborted) return;
        if ((l.stream === 'stdout' && !opts.stdout) || (l.stream === 'stderr' && !opts.stderr)) continue;
        await out.write(l.stream, formatLine(l, opts.timestamps, details));
      }
    } catch (err) {
      if (!abort.signal.aborted) await out.write('stderr', Buffer.from(`Error grabbing logs: ${(err as Error).message}\n`));
    }
  };

  if (!opts.follow) {
    for (const t of sel.tasks().sort(byCreation)) {
      if (abort.signal.aborted) break;
      await copy(t);
    }
  } else {
    // Every task that has run, and each one that starts while the client
    // listens (the store tells us), gets its own concurrent stream.
    const started = new Set<string>();
    let active = 0;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => { finish = resolve; });
    const check = (): void => { if (abort.signal.aborted || sel.over(started.size, active)) finish(); };
    const consider = (t: Task | undefined): void => {
      if (!t || started.has(t.ID) || !sel.wants(t) || taskStateRank(t.Status.State) < taskStateRank('running')) return;
      started.add(t.ID);
      active++;
      void copy(t).finally(() => { active--; check(); });
    };
    const unsubscribe = sel.store.subscribe((events) => {
      for (const e of events) if (e.kind === 'tasks') consider(e.object as Task | undefined);
      check();
    });
    abort.signal.addEventListener('abort', () => finish(), { once: true });
    try {
      for (const t of sel.tasks().sort(byCreation)) consider(t);
      check();
      await finished;
    } finally {
      unsubscribe();
      abort.abort(); // ends streams still open when the selection is over
    }
  }
  if (!res.destroyed) res.end();
}

function byCreation(a: Task, b: Task): number {
  return parseIsoMs(a.CreatedAt) - parseIsoMs(b.CreatedAt) || (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0);
}

// moby attrsByteSlice: sorted keys, query-escaped keys and values, comma-joined.
export function detailsOf(t: Task): string {
  const attrs: Array<[string, string]> = [
    ['com.docker.swarm.node.id', t.NodeID ?? ''],
    ['com.docker.swarm.service.id', t.ServiceID],
    ['com.docker.swarm.task.id', t.ID],
  ];
  return attrs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${queryEscape(k)}=${queryEscape(v)}`).join(',');
}

// Go's url.QueryEscape: everything but [A-Za-z0-9-_.~] escaped, space as '+'.
export function queryEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%20/g, '+');
}

export function formatLine(l: LogLine, timestamps: boolean, details?: Buffer): Buffer {
  const parts: Buffer[] = [];
  if (timestamps) parts.push(Buffer.from(`${l.timestamp} `));
  if (details) parts.push(details);
  parts.push(l.line);
  return Buffer.concat(parts);
}

// stdcopy header [stream, 0, 0, 0, size BE32] per message, or raw bytes for TTY.
export function frame(stream: 'stdout' | 'stderr', payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream === 'stderr' ? 2 : 1;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

// One write per message, so concurrent task streams never interleave inside a
// frame; waits for the socket to drain so a slow client slows the readers.
class LogWriter {
  constructor(private readonly res: ServerResponse, private readonly mux: boolean, private readonly signal: AbortSignal) {}

  async write(stream: 'stdout' | 'stderr', payload: Buffer): Promise<void> {
    if (this.signal.aborted || this.res.destroyed) return;
    if (this.res.write(this.mux ? frame(stream, payload) : payload)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }
}
