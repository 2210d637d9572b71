import type { RootCA } from '../ca/ca';
import { ClusterApi } from './cluster';
import { ConfigsApi } from './configs';
import type { ControlContext } from './context';
import { NetworksApi } from './networks';
import { NodesApi } from './nodes';
import type { SecretBox } from './secret-box';
import { SecretsApi } from './secrets';
import { ServicesApi } from './services';
import { TasksApi } from './tasks';

// The cluster's verbs, one object per resource, sharing one context.
export class ControlApi {
  readonly services: ServicesApi;
  readonly nodes: NodesApi;
  readonly tasks: TasksApi;
  readonly cluster: ClusterApi;
  readonly secrets: SecretsApi;
  readonly configs: ConfigsApi;
  readonly networks: NetworksApi;

  // `dataKey` seals secret values and registry credentials at rest (secret-box.ts).
  constructor(readonly ctx: ControlContext, ca: () => RootCA, readonly dataKey: SecretBox) {
    this.networks = new NetworksApi(ctx);
    this.services = new ServicesApi(ctx, dataKey, this.networks);
    this.nodes = new NodesApi(ctx);
    this.tasks = new TasksApi(ctx, this.services, this.nodes);
    this.cluster = new ClusterApi(ctx, ca, dataKey);
    this.secrets = new SecretsApi(ctx, dataKey);
    this.configs = new ConfigsApi(ctx);
  }
}

export type { ControlContext };
