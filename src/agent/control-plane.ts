import type { Driver, Labels, Task, TaskStatus } from '../model/types';

// What the agent needs from the managers: on every node (managers too) the
// session with the leader's dispatcher (remote-control-plane.ts); tests use
// fakes. The agent never sees which.
export interface AgentControlPlane {
  // Calls `onChange` with every task assigned to `nodeId` (NodeID set, state
  // at least `assigned`), at once and after every change to any of them.
  // `changed` holds the IDs that changed since the previous call; `removed`
  // the IDs of tasks that no longer exist (their containers must go).
  watchAssignments(nodeId: string, onChange: (a: Assignments) => void): () => void;
  // Reports a task's observed status. Regressions (a state lower than the
  // stored one) are ignored by the receiver.
  updateTaskStatus(taskId: string, status: TaskStatus): Promise<void>;
  // The name and labels of a task's service, for container names, labels and
  // templates (SwarmKit sends them along with each task). Without it the
  // agent names containers after the service ID.
  serviceAnnotations?(serviceId: string): ServiceAnnotations | undefined;
  // The values of the secrets and configs one task references, and only those,
  // for a task assigned to this node (SwarmKit's dispatcher sends a node the
  // secrets of its own tasks only). A referenced object that no longer exists
  // is left out. Without these the agent rejects tasks that reference any.
  getSecrets?(taskId: string): Promise<PayloadValue[]>;
  getConfigs?(taskId: string): Promise<PayloadValue[]>;
}

// A secret's or config's value as the agent receives it.
export interface PayloadValue {
  ID: string;
  Name: string;
  Data: Buffer;
  Templating?: Driver;
}

export interface ServiceAnnotations { Name: string; Labels?: Labels }

export interface Assignments {
  tasks: Map<string, Task>;
  changed: Set<string>;
  removed: Set<string>;
}
