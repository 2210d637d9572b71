import type { ServerResponse } from 'node:http';
import { NOT_A_MANAGER, invalid, unavailable } from '../../common/errors';
import { resolveObject } from '../../manager/controlapi/resolve';
import type { BrokerMessage, LogBroker, LogOptions, LogSelector } from '../../manager/logbroker';
import type { Store } from '../../store/store';
import type { Router } from '../router';
import type { SwarmMembership } from './membership';
import { boolValue } from '../../common/go/query';

// `docker service logs` and task logs: the lines of the tasks' containers,
// read on each task's node through this manager's log broker, written exactly
// as moby's write_log_stream does (api/server/httputils): stdcopy frames
// unless the service has a TTY, one frame per message,
// `[<RFC3339Nano ts> ][<details> ]<line>`, errors as "Error grabbing logs: ..."
// on the system-error stream.

// Moby sends this for API 1.41 (1.42+ says multiplexed-stream when not TTY).
export const RAW_STREAM = 'application/vnd.docker.raw-stream';

export interface LogRouteDeps {
  swarm?: Pick<SwarmMembership, 'control'>; // the cluster state while this node is a manager...
  store?: Store;                             // ...or a fixed store (tests)
  broker(): LogBroker | undefined;           // this manager's log broker, while it runs
}

export interface LogQuery extends LogOptions {
  timestamps: boolean;
  details: boolean;
}

export function registerLogRoutes(router: Router, deps: LogRouteDeps): void {
  router.on('GET', '/services/:id/logs', async (req, res) => {
    const opts = parseLogQuery(req.query);
    const { store, broker } = cluster(deps);
    const svc = resolveObject('service', req.params.id!, store.list('services'), (s) => s.Spec.Name, (id) => store.get('services', id));
    await streamLogs(res, opts, !!svc.Spec.TaskTemplate?.ContainerSpec?.TTY, broker, { services: [svc.ID] });
    return undefined;
  });

  router.on('GET', '/tasks/:id/logs', async (req, res) => {
    const opts = parseLogQuery(req.query);
    const { store, broker } = cluster(deps);
    const task = resolveObject('task', req.params.id!, store.list('tasks'), () => undefined, (id) => store.get('tasks', id));
    await streamLogs(res, opts, !!task.Spec.ContainerSpec?.TTY, broker, { tasks: [task.ID] });
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

function cluster(deps: LogRouteDeps): { store: Store; broker: LogBroker } {
  const store = deps.swarm ? deps.swarm.control().ctx.store : deps.store;
  const broker = deps.broker();
  if (!store || !broker) throw unavailable(NOT_A_MANAGER);
  return { store, broker };
}

async function streamLogs(res: ServerResponse, q: LogQuery, tty: boolean, broker: LogBroker, sel: LogSelector): Promise<void> {
  const abort = new AbortController();
  res.on('close', () => abort.abort()); // the client went away
  res.writeHead(200, { 'Content-Type': RAW_STREAM });
  res.flushHeaders();
  const out = new LogWriter(res, !tty, abort.signal);
  const { timestamps, details, ...opts } = q;
  const onMessage = async (m: BrokerMessage): Promise<void> => {
    if (m.kind === 'error') {
      // What the CLI prints after "error from daemon in stream: ", as moby relays SwarmKit's gRPC error.
      await out.write('systemerr', Buffer.from(`Error grabbing logs: rpc error: code = Unknown desc = ${m.message}\n`));
      return;
    }
    if ((m.stream === 'stdout' && !opts.stdout) || (m.stream === 'stderr' && !opts.stderr)) return;
    const attrs = details ? Buffer.from(detailsOf({ ID: m.taskId, ServiceID: m.serviceId, NodeID: m.nodeId }) + ' ') : undefined;
    await out.write(m.stream, formatLine(m, timestamps, attrs));
  };
  try {
    await broker.subscribe(sel, opts, onMessage, abort.signal);
  } catch (err) {
    if (!abort.signal.aborted) await out.write('systemerr', Buffer.from(`Error grabbing logs: ${(err as Error).message}\n`));
  }
  if (!res.destroyed) res.end();
}

// moby attrsByteSlice: sorted keys, query-escaped keys and values, comma-joined.
export function detailsOf(t: { ID: string; ServiceID: string; NodeID?: string }): string {
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

export interface LogLine {
  timestamp: string; // RFC 3339 with 9 fractional digits
  line: Buffer;
}

export function formatLine(l: LogLine, timestamps: boolean, details?: Buffer): Buffer {
  const parts: Buffer[] = [];
  if (timestamps) parts.push(Buffer.from(`${l.timestamp} `));
  if (details) parts.push(details);
  parts.push(l.line);
  return Buffer.concat(parts);
}

type Stream = 'stdout' | 'stderr' | 'systemerr';
const STREAM_BYTE: Record<Stream, number> = { stdout: 1, stderr: 2, systemerr: 3 };

// stdcopy header [stream, 0, 0, 0, size BE32] per message, or raw bytes for TTY.
export function frame(stream: Stream, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = STREAM_BYTE[stream];
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

// One write per message, so concurrent task streams never interleave inside a
// frame; waits for the socket to drain so a slow client slows the readers.
class LogWriter {
  constructor(private readonly res: ServerResponse, private readonly mux: boolean, private readonly signal: AbortSignal) {}

  async write(stream: Stream, payload: Buffer): Promise<void> {
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
