// The fault test's record: every write a client sent and what came back, and
// the final state read from every manager and every host's dockerd. Plain
// data, shared by the recorder (I/O) and the checker (pure).

export type Kind = 'service' | 'secret' | 'config';
export type Op = 'create' | 'update' | 'scale' | 'remove';
// ok: 2xx. fail: a definite refusal (4xx, or Docker's "update out of
// sequence"), nothing applied. unknown: 5xx, time-out, connection error: it
// may or may not have happened, now or later.
export type Outcome = 'ok' | 'fail' | 'unknown';

// Labels every create and update carries, so that the final state says which
// request wrote what: the create that made the object, and the last writer.
export const CREATE_LABEL = 'faults.create';
export const WRITER_LABEL = 'faults.req';

export interface Entry {
  id: string;                 // request id, unique in the run (c<client>-<n>; the failover probe's p<round>-<n>)
  client: number;             // 0: the failover probe (probe.ts)
  op: Op;
  kind: Kind;
  name: string;
  manager: string;            // the host whose socket served it
  target?: string;            // object ID (update, scale, remove)
  baseVersion?: number;       // Version.Index the update was based on
  sent?: { replicas?: number; command?: string[] }; // a service spec's parts the checker compares
  start: number;              // recorder's monotonic ms
  end: number;
  outcome: Outcome;
  status?: number;            // HTTP status, when one came
  body: string;               // response body or error text (trimmed)
  createdId?: string;         // ID an ok create answered
}

export interface ObjectView {
  id: string;
  name: string;
  version: number;
  labels: Record<string, string>;
  replicas?: number;          // services
  command?: string[];         // services
}

export interface TaskView { id: string; serviceId: string; nodeId: string; desired: string; state: string }
export interface NodeView { id: string; hostname: string; state: string }
export interface ContainerView { host: string; id: string; taskId: string; serviceId: string; running: boolean }

export interface ManagerView {
  host: string;
  error?: string;             // why this manager's view could not be read
  services: ObjectView[];
  secrets: ObjectView[];
  configs: ObjectView[];
  tasks: TaskView[];
  nodes: NodeView[];
}

export interface FinalState {
  managers: ManagerView[];
  containers: ContainerView[];
  unreadHosts: string[];      // hosts whose dockerd did not answer (their containers are unknown)
}

export type AnomalyKind =
  | 'lost-create'             // an acknowledged create is not in the final state, and no remove explains it
  | 'resurrected'             // an acknowledged remove's object is in the final state
  | 'failed-write-visible'    // a definitely failed create or update shows in the final state
  | 'failed-remove-applied'   // a definitely failed remove's object is gone and nothing else removed it
  | 'unexplained-object'      // an object no recorded create made
  | 'same-base-version'       // two acknowledged updates based on one version (one must have been refused)
  | 'lost-update'             // the final spec is older than an acknowledged update
  | 'spec-mismatch'           // the final spec is not what its writer sent (half applied)
  | 'duplicate-name'          // two objects of one kind with one name in a manager's view
  | 'managers-disagree'       // managers' views differ
  | 'manager-unreadable'      // a manager's view could not be read
  | 'not-converged'           // running task containers differ from the desired replicas
  | 'orphan-container'        // a task container whose task is gone or not desired running
  | 'task-on-down-node'       // a task desired running on a Down node
  | 'not-recovered'           // after a round's heal the cluster was not healthy within its bound
  | 'ack-without-quorum';     // a write sent and answered ok while two of three managers were down or cut off

export interface Anomaly {
  kind: AnomalyKind;
  objects: string[];          // kind/name/id
  requests: string[];         // request ids involved
  detail: string;
}
