import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerEngine, engineApi, startShoal, waitFor, type DockerCli, type ShoalHandle } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';

// `docker stack deploy/ls/services/ps/rm` with the real docker CLIs (20.10
// and 28.x) on a one-node Shoal, with the seeds' stacks (seed 003's
// registry.yml and app.yml, seed 004's Portainer stack) as written apart from
// image names, host paths, published port numbers and the worker-only
// placement (one node here). Tasks run without the network data path (other
// components): this checks what the CLI makes and shows, and that services
// and tasks are created, updated in place and removed.
const BUSYBOX = 'shoal-test/busybox:1';
// Images whose entrypoint ignores the arguments the stacks give (haproxy's
// config, portainer's -H …) and just stays up.
const APP1 = 'shoal-test/stack-app:1';
const APP2 = 'shoal-test/stack-app:2';
const RUN = randomBytes(2).toString('hex');
const NS = { registry: `reg${RUN}`, app: `app${RUN}`, portainer: `ptn${RUN}`, extras: `ext${RUN}` };
const NAMESPACE_LABEL = 'com.docker.stack.namespace';
const CLI20: DockerCli = '/usr/bin/docker';
const CLI28: DockerCli = '/usr/local/bin/docker';

interface TaskJson { ID: string; ServiceID: string; Status: { State: string; Err?: string }; DesiredState: string; Spec: { ContainerSpec: { Image: string } } }

const registryYml = (dataDir: string) => `version: '3'

services:
  server:
    image: ${APP1}
    ports:
      - 15000:5000
    volumes:
      - ${dataDir}:/var/lib/registry
    deploy:
      replicas: 1
      placement:
        constraints:
          - node.labels.registry == true
`;

const appYml = (image: string, haproxyCfg: string) => `version: '3.4'

services:
  server:
    image: ${image}
    networks:
      - backend
    deploy:
      replicas: 3
      placement:
        constraints:
          - node.role == manager
      update_config:
        parallelism: 1
        delay: 1s
        order: stop-first
  visualizer:
    image: ${APP1}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
    networks:
      - visualizer
    deploy:
      replicas: 1
      placement:
        constraints:
          - node.role == manager
  proxy:
    image: ${APP1}
    ports:
      - 18090:80
    volumes:
      - ${haproxyCfg}:/usr/local/etc/haproxy/haproxy.cfg
    networks:
      - frontend
      - backend
      - visualizer
    deploy:
      replicas: 1
      placement:
        constraints:
          - node.role == manager
    depends_on:
      - server
      - visualizer

networks:
  frontend:
    driver: overlay
  backend:
    driver: overlay
  visualizer:
    driver: overlay
`;

const portainerYml = (volumesDir: string) => `version: '3.2'
services:
  agent:
    image: ${APP1}
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - ${volumesDir}:/var/lib/docker/volumes
    networks:
      - agent_network
    deploy:
      mode: global
      placement:
        constraints: [node.platform.os == linux]

  portainer:
    image: ${APP1}
    command: -H tcp://portainer_agent:9001 --tlsskipverify
    ports:
      - "19000:9000"
      - "18000:8000"
    volumes:
      - portainer_data:/data
    networks:
      - agent_network
    deploy:
      mode: replicated
      replicas: 1
      placement:
        constraints: [node.role == manager]

networks:
  agent_network:
    driver: overlay
    attachable: true

volumes:
  portainer_data:
`;

// What the seeds do not use and stacks often do: secrets, configs, an
// external network, the default network, dnsrr, labels.
const extrasYml = (external: string, secretFile: string, configFile: string, label: string) => `version: '3.8'
services:
  web:
    image: ${BUSYBOX}
    command: ["sleep", "1000000"]
    secrets: [db_pass]
    configs:
      - source: app_conf
        target: /etc/app.conf
    networks: [default, outside]
    deploy:
      endpoint_mode: dnsrr
      labels:
        tier: ${label}
secrets:
  db_pass:
    file: ${secretFile}
configs:
  app_conf:
    file: ${configFile}
networks:
  outside:
    external: true
    name: ${external}
`;

describe('docker stack with the seeds\' stacks', () => {
  let shoal: ShoalHandle;
  let dir = '';

  const run = (args: string[], cli: DockerCli = CLI20) => shoal.docker(args, { cli, timeoutMs: 180_000 });
  const ok = async (args: string[], cli: DockerCli = CLI20) => {
    const r = await run(args, cli);
    assert.equal(r.code, 0, `docker ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const api = async (path: string) => {
    const r = await shoal.api('GET', `/v1.41${path}`);
    assert.equal(r.status, 200, r.text);
    return r.json;
  };
  const filter = (f: Record<string, string[]>) => encodeURIComponent(JSON.stringify(Object.fromEntries(Object.entries(f).map(([k, vs]) => [k, Object.fromEntries(vs.map((v) => [v, true]))]))));
  const stackObjects = async (kind: 'services' | 'networks' | 'secrets' | 'configs', ns: string): Promise<any[]> =>
    api(`/${kind}?filters=${filter({ label: [`${NAMESPACE_LABEL}=${ns}`] })}`);
  const names = async (kind: 'services' | 'networks' | 'secrets' | 'configs', ns: string) =>
    (await stackObjects(kind, ns)).map((o) => o.Spec?.Name ?? o.Name ?? '').sort();
  const tasksOf = async (service: string): Promise<TaskJson[]> => api(`/tasks?filters=${filter({ service: [service] })}`);
  const running = async (service: string) => (await tasksOf(service)).filter((t) => t.Status.State === 'running' && t.DesiredState === 'running');
  const waitRunning = (service: string, n: number, image?: string) => waitFor(`${n} running tasks of ${service}${image ? ` on ${image}` : ''}`, async () => {
    const r = await running(service);
    return r.length === n && (!image || r.every((t) => t.Spec.ContainerSpec.Image.startsWith(image))) ? r : false;
  }, 90_000, 250);

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', BUSYBOX);
    for (const [tag, v] of [[APP1, '1'], [APP2, '2']] as const) {
      const b = await dockerEngine(['build', '-q', '-t', tag, '-'], { cli: CLI20, input: `FROM ${BUSYBOX}\nLABEL shoal.test.stack-app=${v}\nENTRYPOINT ["sh", "-c", "exec sleep 1000000", "stack-app"]\n` });
      assert.equal(b.code, 0, b.stderr);
    }
    shoal = await startShoal({ hostname: 'shoal-stacks-1' });
    await ok(['swarm', 'init']);
    await ok(['node', 'update', '--label-add', 'registry=true', 'shoal-stacks-1']);
    dir = join(shoal.dir, 'stacks');
    mkdirSync(join(dir, 'registry-data'), { recursive: true });
    mkdirSync(join(dir, 'volumes'), { recursive: true });
    writeFileSync(join(dir, 'haproxy.cfg'), 'frontend http_in\n  bind *:80\n');
    writeFileSync(join(dir, 'registry.yml'), registryYml(join(dir, 'registry-data')));
    writeFileSync(join(dir, 'app.yml'), appYml(APP1, join(dir, 'haproxy.cfg')));
    writeFileSync(join(dir, 'portainer.yml'), portainerYml(join(dir, 'volumes')));
  });
  after(async () => {
    await shoal?.cleanup();
    await engineApi('DELETE', `/volumes/${NS.portainer}_portainer_data`).catch(() => undefined);
  });

  test('seed 003 registry.yml: deploy, stack ls/services/ps with both CLIs', async () => {
    const out = await ok(['stack', 'deploy', '--resolve-image', 'never', '-c', join(dir, 'registry.yml'), NS.registry]);
    assert.match(out, new RegExp(`Creating network ${NS.registry}_default`));
    assert.match(out, new RegExp(`Creating service ${NS.registry}_server`));
    assert.deepEqual(await names('networks', NS.registry), [`${NS.registry}_default`]);
    const net = (await stackObjects('networks', NS.registry))[0] as { Driver?: string; Scope?: string; Labels?: Record<string, string> };
    assert.equal(net.Driver, 'overlay');
    assert.equal(net.Scope, 'swarm');
    await waitRunning(`${NS.registry}_server`, 1);
    for (const cli of [CLI20, CLI28]) {
      assert.match(await ok(['stack', 'ls'], cli), new RegExp(`^${NS.registry}\\s+1(\\s|$)`, 'm'));
      const services = await ok(['stack', 'services', NS.registry], cli);
      // PORTS shows Endpoint.Ports, which the allocator fills (not in this test's daemon alone).
      assert.match(services, new RegExp(`${NS.registry}_server\\s+replicated\\s+1/1\\s+${APP1.replace(/[/.]/g, '\\$&')}`));
      assert.match(await ok(['stack', 'ps', NS.registry], cli), new RegExp(`${NS.registry}_server\\.1\\s+${APP1.replace(/[/.]/g, '\\$&')}\\s+shoal-stacks-1\\s+Running\\s+Running`));
    }
    const svc = (await stackObjects('services', NS.registry))[0];
    assert.deepEqual(svc.Spec.EndpointSpec.Ports, [{ Protocol: 'tcp', TargetPort: 5000, PublishedPort: 15000, PublishMode: 'ingress' }]);
    assert.deepEqual(svc.Spec.TaskTemplate.Networks, [{ Target: (await stackObjects('networks', NS.registry))[0]!.Id, Aliases: ['server'] }]);
  });

  test('seed 003 app.yml with the 28.x CLI: deploy waits for convergence, redeploy of a changed file updates in place', async () => {
    const out = await ok(['stack', 'deploy', '--detach=false', '--resolve-image', 'never', '-c', join(dir, 'app.yml'), NS.app], CLI28);
    for (const n of ['frontend', 'backend', 'visualizer']) assert.match(out, new RegExp(`Creating network ${NS.app}_${n}`));
    assert.deepEqual(await names('services', NS.app), ['proxy', 'server', 'visualizer'].map((s) => `${NS.app}_${s}`));
    const first = await waitRunning(`${NS.app}_server`, 3, APP1);
    await waitRunning(`${NS.app}_proxy`, 1);
    const nets = new Map((await stackObjects('networks', NS.app)).map((n) => [n.Name!, n.Id!]));
    const proxy = JSON.parse(await ok(['service', 'inspect', `${NS.app}_proxy`]))[0];
    assert.deepEqual(proxy.Spec.TaskTemplate.Networks.map((n: { Target: string }) => n.Target).sort(),
      ['frontend', 'backend', 'visualizer'].map((n) => nets.get(`${NS.app}_${n}`)).sort());
    assert.equal(proxy.Spec.EndpointSpec.Ports[0].PublishedPort, 18090);

    writeFileSync(join(dir, 'app.yml'), appYml(APP2, join(dir, 'haproxy.cfg')));
    const again = await ok(['stack', 'deploy', '--resolve-image', 'never', '-c', join(dir, 'app.yml'), NS.app]);
    assert.match(again, new RegExp(`Updating service ${NS.app}_server \\(id: [0-9a-z]{25}\\)`));
    assert.doesNotMatch(again, /Creating/);
    const updated = await waitRunning(`${NS.app}_server`, 3, APP2);
    assert.ok(updated.every((t) => !first.some((f) => f.ID === t.ID)), 'every task replaced');
    assert.equal((await names('services', NS.app)).length, 3);
    assert.match(await ok(['stack', 'ps', '--filter', 'desired-state=shutdown', NS.app]), new RegExp(`${NS.app}_server\\.1\\s+${APP1.replace(/[/.]/g, '\\$&')}\\s+shoal-stacks-1\\s+Shutdown\\s+Shutdown`));
  });

  test('seed 004 Portainer stack: a global agent and an attachable network', async () => {
    const out = await ok(['stack', 'deploy', '--resolve-image', 'never', '-c', join(dir, 'portainer.yml'), NS.portainer]);
    assert.match(out, new RegExp(`Creating network ${NS.portainer}_agent_network`));
    const net = JSON.parse(await ok(['network', 'inspect', `${NS.portainer}_agent_network`]))[0];
    assert.equal(net.Attachable, true);
    assert.equal(net.Labels[NAMESPACE_LABEL], NS.portainer);
    await waitRunning(`${NS.portainer}_agent`, 1);
    await waitRunning(`${NS.portainer}_portainer`, 1);
    assert.match(await ok(['stack', 'services', NS.portainer], CLI28), new RegExp(`${NS.portainer}_agent\\s+global\\s+1/1`));
    const p = JSON.parse(await ok(['service', 'inspect', `${NS.portainer}_portainer`]))[0];
    assert.deepEqual(p.Spec.TaskTemplate.ContainerSpec.Mounts[0], { Type: 'volume', Source: `${NS.portainer}_portainer_data`, Target: '/data', VolumeOptions: { Labels: { [NAMESPACE_LABEL]: NS.portainer } } });
  });

  test('secrets, configs, an external network, then stack rm leaves nothing behind', async () => {
    const external = `ext_net_${RUN}`;
    await ok(['network', 'create', '-d', 'overlay', '--attachable', external]);
    writeFileSync(join(dir, 'secret.txt'), 's3cret');
    writeFileSync(join(dir, 'app.conf'), 'a=1\n');
    const file = join(dir, 'extras.yml');
    writeFileSync(file, extrasYml(external, join(dir, 'secret.txt'), join(dir, 'app.conf'), 'one'));
    // A missing external network is the CLI's own error, from GET /networks/NAME.
    writeFileSync(join(dir, 'bad.yml'), extrasYml('no_such_net', join(dir, 'secret.txt'), join(dir, 'app.conf'), 'one'));
    const bad = await run(['stack', 'deploy', '-c', join(dir, 'bad.yml'), NS.extras]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /network "no_such_net" is declared as external, but could not be found/);

    const out = await ok(['stack', 'deploy', '--resolve-image', 'never', '-c', file, NS.extras], CLI28);
    assert.match(out, new RegExp(`Creating secret ${NS.extras}_db_pass`));
    assert.match(out, new RegExp(`Creating config ${NS.extras}_app_conf`));
    assert.match(out, new RegExp(`Creating network ${NS.extras}_default`));
    await waitRunning(`${NS.extras}_web`, 1);
    const web = JSON.parse(await ok(['service', 'inspect', `${NS.extras}_web`]))[0];
    assert.equal(web.Spec.EndpointSpec.Mode, 'dnsrr');
    assert.equal(web.Spec.TaskTemplate.Networks.length, 2);
    // Same secret, new label: updated in place.
    writeFileSync(file, extrasYml(external, join(dir, 'secret.txt'), join(dir, 'app.conf'), 'two'));
    assert.match(await ok(['stack', 'deploy', '--resolve-image', 'never', '-c', file, NS.extras]), new RegExp(`Updating service ${NS.extras}_web`));
    await waitFor('the label updated', async () => JSON.parse((await run(['service', 'inspect', `${NS.extras}_web`])).stdout)[0]?.Spec.Labels.tier === 'two', 30_000);

    assert.match(await ok(['stack', 'ls'], CLI28), new RegExp(`^${NS.extras}\\s+1\\s`, 'm'));
    for (const [ns, cli] of [[NS.extras, CLI28], [NS.app, CLI20], [NS.registry, CLI28], [NS.portainer, CLI20]] as const) {
      const rm = await ok(['stack', 'rm', ns], cli);
      assert.match(rm, new RegExp(`Removing service ${ns}_`));
      assert.doesNotMatch(rm, /Failed/);
      for (const kind of ['services', 'networks', 'secrets', 'configs'] as const) assert.deepEqual(await names(kind, ns), [], `${kind} of ${ns} left`);
    }
    assert.doesNotMatch(await ok(['stack', 'ls']), new RegExp(RUN));
    // The external network stays; every task is on its way down.
    assert.match(await ok(['network', 'ls']), new RegExp(external));
    await waitFor('no task left running', async () => (await api('/tasks')).every((t: TaskJson) => t.DesiredState !== 'running'), 30_000);
  });
});
