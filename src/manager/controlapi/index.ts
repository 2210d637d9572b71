import type { RootCA } from '../ca/ca';
import { ClusterApi } from './cluster';
import type { ControlContext } from './context';
import { NodesApi } from './nodes';
import { ServicesApi } from './services';
import { TasksApi } from './tasks';

// The cluster's verbs, one object per resource, sharing one context.
export class ControlApi {
  readonly services: ServicesApi;
  readonly nodes: NodesApi;
  readonly tasks: TasksApi;
  readonly cluster: ClusterApi;

  constructor(readonly ctx: ControlContext, ca: () => RootCA) {
    this.services = new ServicesApi(ctx);
    this.nodes = new NodesApi(ctx);
    this.tasks = new TasksApi(ctx, this.services, this.nodes);
    this.cluster = new ClusterApi(ctx, ca);
  }
}

export type { ControlContext };
