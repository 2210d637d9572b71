// The log broker's wire contract (SwarmKit's ListenSubscriptions/PublishLogs):
// an agent keeps `logs.Subscriptions` open to a manager and hears which of its
// tasks' logs are wanted; it answers each subscription with `logs.Publish`
// batches on the same manager. The manager checks that a batch comes from the
// node the subscription was sent to and names only that node's tasks.
import { invalid } from '../common/errors';
import type { StreamMethod, UnaryMethod } from '../rpc/transport';

// Bounds: a batch carries at most 1 MiB of (base64) log bytes and
// MAX_BATCH_MESSAGES lines; a subscription message at most
// MAX_TASKS_PER_MESSAGE tasks (a bigger selection is sent in parts, `more`).
export const MAX_BATCH_BYTES = 1024 * 1024;
export const MAX_BATCH_MESSAGES = 10_000;
export const MAX_TASKS_PER_MESSAGE = 10_000;
// One message's bytes; an agent cuts a longer line (a TTY line without newline) into parts.
export const MAX_LINE_BYTES = 256 * 1024;

export interface LogReadOptions {
  follow: boolean;
  stdout: boolean;
  stderr: boolean;
  tail?: string;   // a number of lines per task; absent = all
  since?: string;  // unix seconds, possibly fractional
  until?: string;
}

export interface SubscribedTask {
  taskId: string;
  containerId?: string; // as the task's status last reported it
}

// Manager → agent. The first message for an ID carries `options`; later ones
// add tasks (follow: tasks that started since) or `close` it. `more`: the
// task list continues in the next message (non-follow reads wait for it).
export interface SubscriptionMessage {
  id: string;
  options?: LogReadOptions;
  tasks?: SubscribedTask[];
  more?: boolean;
  close?: boolean;
}

export interface PublishedLine {
  taskId: string;
  stream: 'stdout' | 'stderr';
  timestamp: string; // RFC 3339 with 9 fractional digits
  data: string;      // the line's bytes, base64
}

// Agent → manager. `done`: tasks whose log has ended (follow), with the reason
// if reading failed. `close`: the agent is finished with the subscription
// (every task read, or `error` says why it cannot go on).
export interface PublishRequest {
  subscriptionId: string;
  messages: PublishedLine[];
  done?: Array<{ taskId: string; error?: string }>;
  close?: boolean;
  error?: string;
}

export type ListenRequest = Record<string, never>;
export type PublishResponse = Record<string, never>;

// ---------- checks ----------

const ID_RE = /^[a-z0-9]{1,64}$/;
const CONTAINER_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/; // an ID or a name, as the engine takes it
const UNIX_TS_RE = /^\d+(\.\d{1,9})?$/;
const TAIL_RE = /^\d{1,10}$/;
const TS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d)$/;
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_ERROR_CHARS = 2048;

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${what}: not an object`);
  return v as Record<string, unknown>;
}

function str(v: unknown, what: string, re?: RegExp, max = 1024): string {
  if (typeof v !== 'string' || v.length > max || (re && !re.test(v))) throw invalid(`${what}: bad value`);
  return v;
}

const optStr = (v: unknown, what: string, re?: RegExp, max?: number): string | undefined => (v === undefined ? undefined : str(v, what, re, max));

function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw invalid(`${what}: not a boolean`);
  return v;
}

const optTrue = (v: unknown, what: string): true | undefined => (v === undefined || v === false ? undefined : bool(v, what) || undefined);

function list<T>(v: unknown, what: string, max: number, item: (x: unknown, i: number) => T): T[] {
  if (!Array.isArray(v)) throw invalid(`${what}: not a list`);
  if (v.length > max) throw invalid(`${what}: more than ${max} items`);
  return v.map(item);
}

function checkOptions(raw: unknown): LogReadOptions {
  const o = obj(raw, 'options');
  const out: LogReadOptions = { follow: bool(o['follow'], 'options.follow'), stdout: bool(o['stdout'], 'options.stdout'), stderr: bool(o['stderr'], 'options.stderr') };
  const tail = optStr(o['tail'], 'options.tail', TAIL_RE);
  const since = optStr(o['since'], 'options.since', UNIX_TS_RE, 32);
  const until = optStr(o['until'], 'options.until', UNIX_TS_RE, 32);
  if (tail !== undefined) out.tail = tail;
  if (since !== undefined) out.since = since;
  if (until !== undefined) out.until = until;
  return out;
}

export function checkSubscriptionMessage(raw: unknown): SubscriptionMessage {
  const o = obj(raw, 'subscription');
  const out: SubscriptionMessage = { id: str(o['id'], 'subscription.id', ID_RE) };
  if (o['options'] !== undefined) out.options = checkOptions(o['options']);
  if (o['tasks'] !== undefined) {
    out.tasks = list(o['tasks'], 'subscription.tasks', MAX_TASKS_PER_MESSAGE, (x, i) => {
      const t = obj(x, `subscription.tasks[${i}]`);
      const task: SubscribedTask = { taskId: str(t['taskId'], 'taskId', ID_RE) };
      const c = optStr(t['containerId'], 'containerId', CONTAINER_RE);
      if (c) task.containerId = c;
      return task;
    });
  }
  if (optTrue(o['more'], 'subscription.more')) out.more = true;
  if (optTrue(o['close'], 'subscription.close')) out.close = true;
  return out;
}

export function checkPublishRequest(raw: unknown): PublishRequest {
  const o = obj(raw, 'publish');
  let bytes = 0;
  const out: PublishRequest = {
    subscriptionId: str(o['subscriptionId'], 'subscriptionId', ID_RE),
    messages: list(o['messages'], 'messages', MAX_BATCH_MESSAGES, (x, i) => {
      const m = obj(x, `messages[${i}]`);
      const stream = m['stream'];
      if (stream !== 'stdout' && stream !== 'stderr') throw invalid(`messages[${i}].stream: bad value`);
      const data = str(m['data'], `messages[${i}].data`, B64_RE, MAX_BATCH_BYTES);
      bytes += data.length;
      if (bytes > MAX_BATCH_BYTES) throw invalid(`publish: more than ${MAX_BATCH_BYTES} bytes of log data`);
      return { taskId: str(m['taskId'], `messages[${i}].taskId`, ID_RE), stream, timestamp: str(m['timestamp'], `messages[${i}].timestamp`, TS_RE, 64), data };
    }),
  };
  if (o['done'] !== undefined) {
    out.done = list(o['done'], 'done', MAX_TASKS_PER_MESSAGE, (x, i) => {
      const d = obj(x, `done[${i}]`);
      const e = optStr(d['error'], `done[${i}].error`, undefined, MAX_ERROR_CHARS);
      return e === undefined ? { taskId: str(d['taskId'], 'taskId', ID_RE) } : { taskId: str(d['taskId'], 'taskId', ID_RE), error: e };
    });
  }
  if (optTrue(o['close'], 'publish.close')) out.close = true;
  const error = optStr(o['error'], 'publish.error', undefined, MAX_ERROR_CHARS);
  if (error !== undefined) out.error = error;
  return out;
}

function checkEmpty(raw: unknown): Record<string, never> {
  obj(raw, 'request');
  return {};
}

export const Subscriptions: StreamMethod<ListenRequest, SubscriptionMessage> = {
  name: 'logs.Subscriptions',
  access: 'node',
  request: checkEmpty,
  message: checkSubscriptionMessage,
};

export const Publish: UnaryMethod<PublishRequest, PublishResponse> = {
  name: 'logs.Publish',
  access: 'node',
  request: checkPublishRequest,
  response: checkEmpty,
};
