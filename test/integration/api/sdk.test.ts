import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Dockerode from 'dockerode';
import { startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';

const IMG = 'shoal-test/busybox:1';

interface TaskView { ID: string; NodeID?: string; DesiredState: string; Status: { State: string } }

// Shoal driven by an SDK rather than the CLI: dockerode sends what its user
// writes, lowercase field names and `True` query flags included, and Docker
// reads those with Go's rules. Each behaviour is checked on running tasks or
// on what Shoal stored.
describe('a real SDK (dockerode) drives Shoal', () => {
  let shoal: ShoalHandle;
  let docker: Dockerode;
  let nodeId = '';

  const running = async (service: string): Promise<TaskView[]> => {
    const tasks = (await docker.listTasks({ filters: { service: [service], 'desired-state': ['running'] } })) as TaskView[];
    return tasks.filter((t) => t.Status.State === 'running');
  };

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    shoal = await startShoal({ hostname: 'sdk' });
    const init = await shoal.docker(['swarm', 'init']);
    assert.equal(init.code, 0, init.stderr);
    docker = new Dockerode({ socketPath: shoal.socket });
    nodeId = ((await docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID;
  });
  after(async () => { await shoal?.cleanup(); });

  test('lowercase mode/replicas: five replicas run', async () => {
    await docker.createService({
      name: 'five',
      tasktemplate: { containerspec: { image: IMG, args: ['sleep', '3600'] } },
      mode: { replicated: { replicas: 5 } },
    } as never);
    await waitFor('5 running', async () => (await running('five')).length === 5, 60_000);
    const spec = (await docker.getService('five').inspect()).Spec;
    assert.deepEqual(spec.Mode, { Replicated: { Replicas: 5 } });
  });

  test('lowercase global mode: one task on the node', async () => {
    await docker.createService({
      Name: 'everywhere',
      TaskTemplate: { ContainerSpec: { Image: IMG, Args: ['sleep', '3600'] } },
      Mode: { global: {} },
    } as never);
    const tasks = await waitFor('1 running', async () => { const t = await running('everywhere'); return t.length === 1 ? t : undefined; }, 30_000);
    assert.equal(tasks[0]!.NodeID, nodeId);
    assert.deepEqual((await docker.getService('everywhere').inspect()).Spec.Mode, { Global: {} });
  });

  test('update with lowercase updateconfig: Order start-first is stored and the update completes', async () => {
    const svc = docker.getService('five');
    const cur = await svc.inspect();
    const spec = structuredClone(cur.Spec);
    spec.TaskTemplate.ContainerSpec.Args = ['sleep', '3601'];
    await svc.update({ version: cur.Version.Index, ...spec, updateconfig: { parallelism: 5, order: 'start-first', monitor: 100_000_000 } });
    const after = await svc.inspect();
    assert.equal(after.Spec.UpdateConfig?.Order, 'start-first');
    assert.equal(after.Spec.UpdateConfig?.Parallelism, 5);
    await waitFor('update completed', async () => (await svc.inspect()).UpdateStatus?.State === 'completed', 60_000);
  });

  test('config with lowercase Templating keeps it', async () => {
    const created = await docker.createConfig({ name: 'tpl', data: Buffer.from('{{ .Service.Name }}').toString('base64'), templating: { name: 'golang' } } as never);
    const cfg = (await docker.getConfig((created as { id: string }).id).inspect()) as { Spec: { Templating?: unknown } };
    assert.deepEqual(cfg.Spec.Templating, { Name: 'golang' });
  });

  test('?status=True and ?insertDefaults=True are honoured', async () => {
    const list = (await docker.listServices({ status: 'True' } as never)) as unknown as Array<{ Spec: { Name: string }; ServiceStatus?: { DesiredTasks: number } }>;
    assert.equal(list.find((s) => s.Spec.Name === 'five')?.ServiceStatus?.DesiredTasks, 5);
    const withDefaults = await new Promise<{ Spec: { TaskTemplate: { RestartPolicy?: { Condition?: string } } } }>((resolve, reject) => {
      docker.modem.dial({ path: '/services/everywhere?', method: 'GET', options: { insertDefaults: 'True' }, statusCodes: { 200: true } },
        (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as never)));
    });
    assert.equal(withDefaults.Spec.TaskTemplate.RestartPolicy?.Condition, 'any');
  });

  test('a wrongly typed field is a 400 with Go\'s message', async () => {
    await assert.rejects(docker.createService({ Name: 'typo', TaskTemplate: { ContainerSpec: { Image: IMG } }, Mode: { Replicated: { Replicas: '5' } } } as never),
      (e: { statusCode?: number; json?: { message?: string } }) => {
        assert.equal(e.statusCode, 400);
        assert.equal(e.json?.message, 'json: cannot unmarshal string into Go struct field ReplicatedService.Mode.Replicated.Replicas of type uint64');
        return true;
      });
  });
});
