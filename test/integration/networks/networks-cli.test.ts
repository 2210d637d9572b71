import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { engineApi, startShoal, type DockerCli, type ShoalHandle } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';
import { ENGINE_NETWORK_LABEL } from '../../../src/protocol/network-view';

// docker network create/ls/inspect/rm/prune and services' --network, with the
// real docker CLIs through one Shoal daemon in front of the host's dockerd.
// Engine networks this test makes carry a label of its own, so pruning never
// touches anyone else's networks on the shared engine.
const IMG = 'shoal-test/busybox:1';
const RUN = randomBytes(3).toString('hex');
const MINE = `shoal-nettest=${RUN}`;

interface NetJson { Id: string; Name: string; Scope: string; Driver: string; Internal: boolean; Attachable: boolean; Ingress: boolean; Labels: Record<string, string>; Options: Record<string, string> | null; IPAM: { Driver: string; Config: Array<{ Subnet?: string; Gateway?: string; IPRange?: string }> } }

describe('swarm networks driven by the docker CLI', () => {
  let shoal: ShoalHandle;
  const engineNets: string[] = [];

  const run = (args: string[], cli?: DockerCli, input?: string) => shoal.docker(args, { ...(cli ? { cli } : {}), ...(input !== undefined ? { input } : {}) });
  const ok = async (args: string[], cli?: DockerCli, input?: string) => {
    const r = await run(args, cli, input);
    assert.equal(r.code, 0, `docker ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const fails = async (args: string[], pattern: RegExp, cli?: DockerCli, input?: string) => {
    const r = await run(args, cli, input);
    assert.notEqual(r.code, 0, `docker ${args.join(' ')} should fail: ${r.stdout}`);
    assert.match(r.stderr, pattern);
    return r.stderr;
  };
  const inspect = async (name: string, cli?: DockerCli): Promise<NetJson> => (JSON.parse(await ok(['network', 'inspect', name], cli)) as NetJson[])[0]!;

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    shoal = await startShoal({ hostname: 'shoal-networks-1' });
    await ok(['swarm', 'init']);
  });
  after(async () => {
    await shoal?.cleanup();
    for (const id of engineNets) await engineApi('DELETE', `/networks/${id}`).catch(() => undefined);
  });

  test('the ingress network comes with the swarm and is listed with the engine networks', async () => {
    for (const cli of ['/usr/bin/docker', '/usr/local/bin/docker'] as const) {
      const ls = await ok(['network', 'ls'], cli);
      assert.match(ls, /^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE/);
      assert.match(ls, /\singress\s+overlay\s+swarm\s*$/m);
      assert.match(ls, /\sbridge\s+bridge\s+local\s*$/m);
      assert.match(ls, /\shost\s+host\s+local\s*$/m);
      const ing = await inspect('ingress', cli);
      assert.equal(ing.Scope, 'swarm');
      assert.equal(ing.Driver, 'overlay');
      assert.equal(ing.Ingress, true);
      assert.deepEqual(ing.IPAM.Config, [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }]);
      assert.match(ing.Id, /^[0-9a-z]{25}$/);
    }
  });

  test('overlay networks: create with every option, inspect, ls filters, errors', async () => {
    const id = (await ok(['network', 'create', '-d', 'overlay', '--attachable', '--internal', '--subnet', '10.99.7.0/24', '--gateway', '10.99.7.1',
      '--ip-range', '10.99.7.128/25', '--opt', 'com.docker.network.driver.mtu=1400', '--label', 'env=test', 'nt_a'])).trim();
    assert.match(id, /^[0-9a-z]{25}$/);
    const a = await inspect('nt_a', '/usr/local/bin/docker');
    assert.equal(a.Id, id);
    assert.equal(a.Scope, 'swarm');
    assert.equal(a.Attachable, true);
    assert.equal(a.Internal, true);
    assert.equal(a.Ingress, false);
    assert.deepEqual(a.Labels, { env: 'test' });
    assert.equal(a.Options?.['com.docker.network.driver.mtu'], '1400');
    assert.deepEqual(a.IPAM.Config, [{ Subnet: '10.99.7.0/24', IPRange: '10.99.7.128/25', Gateway: '10.99.7.1' }]);
    assert.equal((await inspect(id.slice(0, 8))).Name, 'nt_a');
    await ok(['network', 'create', '-d', 'overlay', 'nt_b']);

    await fails(['network', 'create', '-d', 'overlay', 'nt_a'], /network with name nt_a already exists/);
    await ok(['network', 'create', '-d', 'overlay', '--opt', 'encrypted', 'nt_x']);
    assert.equal((await inspect('nt_x')).Options?.['encrypted'], '');
    await ok(['network', 'rm', 'nt_x']);
    await fails(['network', 'create', '-d', 'overlay', '--subnet', '10.99.7.64/26', 'nt_x'], /Pool overlaps with other one on this address space/);
    await fails(['network', 'create', '-d', 'overlay', '--subnet', '10.0.0.0/16', 'nt_x'], /Pool overlaps/);
    // The CLI checks a gateway against its subnets itself; the API too.
    const badGw = await shoal.api('POST', '/v1.41/networks/create', { Name: 'nt_x', Driver: 'overlay', IPAM: { Config: [{ Subnet: '10.99.8.0/24', Gateway: '10.99.9.1' }] } });
    assert.equal(badGw.status, 400);
    assert.match(badGw.json.message, /subnet 10\.99\.8\.0\/24 does not contain gateway 10\.99\.9\.1/);
    await fails(['network', 'create', '-d', 'overlay', '--opt', 'frobnicate=1', 'nt_x'], /overlay driver option frobnicate is not supported/);
    await fails(['network', 'create', '-d', 'overlay', '--ingress', 'nt_x'], /ingress network \([0-9a-z]{25}\) is already present/);
    await fails(['network', 'create', '-d', 'overlay', 'bad.name'], /name must be valid as a DNS name component/);
    await fails(['network', 'create', '-d', 'overlay', 'host'], /operation is not permitted on predefined host network/);
    await fails(['network', 'inspect', 'nt_nosuch'], /network nt_nosuch not found|No such network/);

    const names = (args: string[]) => ok(['network', 'ls', '--format', '{{.Name}}', ...args]).then((o) => o.split('\n').filter(Boolean).sort());
    assert.deepEqual(await names(['--filter', 'label=env=test']), ['nt_a']);
    assert.deepEqual((await names(['--filter', 'driver=overlay'])), ['ingress', 'nt_a', 'nt_b']);
    assert.ok((await names(['--filter', 'scope=swarm'])).includes('nt_b'));
    assert.ok(!(await names(['--filter', 'scope=local'])).includes('nt_b'));
    assert.deepEqual(await names(['--filter', `id=${id}`]), ['nt_a']);
  });

  test('engine networks go to the engine; the engine networks that carry swarm networks are hidden', async () => {
    const br = `nt-br-${RUN}`;
    const id = (await ok(['network', 'create', '-d', 'bridge', '--label', MINE, br])).trim();
    engineNets.push(id);
    const onEngine = await engineApi('GET', `/networks/${id}`);
    assert.equal(onEngine.status, 200);
    assert.equal((await inspect(br)).Scope, 'local');
    assert.match(await ok(['network', 'ls']), new RegExp(`\\s${br}\\s+bridge\\s+local`));
    // A swarm network's name is taken for the engine's networks too.
    await fails(['network', 'create', '-d', 'bridge', 'nt_b'], /network with name nt_b already exists/);

    const hidden = `nt-plumbing-${RUN}`;
    const made = await engineApi('POST', '/networks/create', { Name: hidden, Driver: 'bridge', Labels: { [ENGINE_NETWORK_LABEL]: 'x', 'shoal-nettest': RUN } });
    assert.equal(made.status, 201, made.text);
    engineNets.push(made.json.Id);
    assert.doesNotMatch(await ok(['network', 'ls']), new RegExp(hidden));
    await fails(['network', 'inspect', hidden], /No such network/);
    await fails(['network', 'rm', hidden], /No such network|not found/);

    await ok(['network', 'rm', br]);
    assert.equal((await engineApi('GET', `/networks/${id}`)).status, 404);
  });

  test('services: --network by name with aliases, refusals, --network-add/rm, removal refused while in use', async () => {
    await fails(['service', 'create', '--detach', '--network', 'nt_nosuch', IMG, 'sleep', '1000'], /No such network: nt_nosuch/);
    // Through the API (no CLI look-up first): the daemon's own text.
    const unknown = await shoal.api('POST', '/v1.41/services/create', { TaskTemplate: { ContainerSpec: { Image: IMG }, Networks: [{ Target: 'nt_nosuch' }] } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.message, 'network nt_nosuch not found');
    const local = await shoal.api('POST', '/v1.41/services/create', { TaskTemplate: { ContainerSpec: { Image: IMG }, Networks: [{ Target: 'bridge' }] } });
    assert.equal(local.status, 403);
    assert.equal(local.json.message, 'The network bridge cannot be used with services. Only networks scoped to the swarm can be used, such as those created with the overlay driver.');
    await fails(['service', 'create', '--detach', '--network', 'ingress', IMG, 'sleep', '1000'], /Service cannot be explicitly attached to the ingress network "ingress"/);
    await ok(['service', 'create', '--detach', '--name', 'nt_svc', '--network', 'name=nt_a,alias=web,driver-opt=k=v', IMG, 'sleep', '100000']);
    const a = await inspect('nt_a');
    const svc = JSON.parse(await ok(['service', 'inspect', 'nt_svc']))[0];
    assert.deepEqual(svc.Spec.TaskTemplate.Networks, [{ Target: a.Id, Aliases: ['web'], DriverOpts: { k: 'v' } }]);
    assert.equal(svc.Spec.Networks, undefined);

    const inUse = await fails(['network', 'rm', 'nt_a'], /is in use by service/);
    assert.match(inUse, new RegExp(`network ${a.Id} is in use by service ${svc.ID}`));

    await ok(['service', 'update', '--detach', '--network-rm', 'nt_a', '--network-add', 'nt_b', 'nt_svc']);
    const b = await inspect('nt_b');
    const after = JSON.parse(await ok(['service', 'inspect', 'nt_svc']))[0];
    assert.deepEqual(after.Spec.TaskTemplate.Networks.map((n: { Target: string }) => n.Target), [b.Id]);

    // Through the API: the deprecated ServiceSpec.Networks, by name, lands in TaskTemplate.Networks as an ID.
    const made = await shoal.api('POST', '/v1.41/services/create', {
      Name: 'nt_legacy', TaskTemplate: { ContainerSpec: { Image: IMG, Args: ['sleep', '1000'] } }, Networks: [{ Target: 'nt_b' }],
    });
    assert.equal(made.status, 201, made.text);
    const legacy = (await shoal.api('GET', '/v1.41/services/nt_legacy')).json;
    assert.deepEqual(legacy.Spec.TaskTemplate.Networks, [{ Target: b.Id }]);
    assert.equal(legacy.Spec.Networks, undefined);
    await ok(['service', 'rm', 'nt_legacy']);

    // Published through the mesh: the ingress network cannot go.
    await ok(['service', 'create', '--detach', '--name', 'nt_pub', '-p', '18080:80', IMG, 'sleep', '100000']);
    const pub = JSON.parse(await ok(['service', 'inspect', 'nt_pub']))[0];
    await fails(['network', 'rm', 'ingress'], new RegExp(`ingress network cannot be removed because service ${pub.ID} depends on it`), undefined, 'y\n');
    await ok(['service', 'rm', 'nt_pub', 'nt_svc']);
    // A removed service's tasks do not hold its networks.
    await ok(['network', 'rm', 'nt_b']);
  });

  test('prune removes unused swarm and engine networks matching the filter, never ingress nor networks in use', async () => {
    await ok(['network', 'create', '-d', 'overlay', '--label', MINE, 'nt_unused']);
    await ok(['network', 'create', '-d', 'overlay', '--label', MINE, 'nt_used']);
    await ok(['service', 'create', '--detach', '--name', 'nt_user', '--network', 'nt_used', IMG, 'sleep', '100000']);
    const brId = (await ok(['network', 'create', '-d', 'bridge', '--label', MINE, `nt-prune-${RUN}`])).trim();
    engineNets.push(brId);
    const out = await ok(['network', 'prune', '--force', '--filter', `label=${MINE}`]);
    assert.match(out, /nt_unused/);
    assert.match(out, new RegExp(`nt-prune-${RUN}`));
    assert.doesNotMatch(out, /nt_used|ingress/);
    const names = (await ok(['network', 'ls', '--format', '{{.Name}}'])).split('\n');
    assert.ok(names.includes('nt_used') && names.includes('ingress') && names.includes('nt_a'));
    assert.ok(!names.includes('nt_unused'));
    await ok(['service', 'rm', 'nt_user']);
    await ok(['network', 'rm', 'nt_used', 'nt_a']);
  });

  test('the ingress network can be removed once nothing publishes, and made again', async () => {
    await ok(['network', 'rm', 'ingress'], undefined, 'y\n');
    assert.doesNotMatch(await ok(['network', 'ls']), /\singress\s/);
    await fails(['service', 'create', '--detach', '-p', '18081:80', IMG, 'sleep', '1000'], /service needs ingress network, but no ingress network is present/);
    await ok(['network', 'create', '-d', 'overlay', '--ingress', '--subnet', '10.98.0.0/24', 'my-ingress']);
    assert.equal((await inspect('my-ingress')).Ingress, true);
  });
});
