import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Network, NetworkAttachment, Task } from '../../../src/model/types';
import { buildContainerConfig } from '../../../src/agent/executor/container-config';
import { SHOAL_DNS_ADDR, engineNetworkName } from '../../../src/protocol/network-view';

const NODE = 'node00000000000000000000a1';
const NET1 = 'net0000000000000000000001a';
const NET2 = 'net0000000000000000000002b';

const net = (id: string, name: string): Network => ({ ID: id, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '', Spec: { Name: name } });

function task(extra: Partial<Task> = {}): Task {
  return {
    ID: 'task0000000000000000000001', Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '', Labels: {},
    Spec: { ContainerSpec: { Image: 'shoal-test/busybox:1' } }, ServiceID: 'svc00000000000000000000001', Slot: 1, NodeID: NODE,
    Status: { Timestamp: '', State: 'assigned', Message: '' }, DesiredState: 'running', ...extra,
  };
}

const build = (t: Task) => buildContainerConfig({ task: t, serviceName: 'web', nodeId: NODE });
const attach = (id: string, name: string, addr: string, aliases?: string[]): NetworkAttachment => ({ Network: net(id, name), Addresses: [addr], ...(aliases ? { Aliases: aliases } : {}) });

test('no networks: the engine\'s default network, no Shoal DNS', () => {
  const c = build(task());
  assert.equal(c.body.NetworkingConfig, undefined);
  assert.equal(c.body.HostConfig.NetworkMode, undefined);
  assert.equal(c.body.HostConfig.Dns, undefined);
  assert.equal(c.connect, undefined);
});

test('one network: created on its engine network with the allocated address and the attachment\'s aliases, never the service name', () => {
  const c = build(task({ NetworksAttachments: [attach(NET1, 'app', '10.0.1.5/24', ['db', 'web', 'db'])] }));
  const name = engineNetworkName(NET1);
  assert.equal(c.body.HostConfig.NetworkMode, name);
  assert.deepEqual(c.body.NetworkingConfig, { EndpointsConfig: { [name]: { IPAMConfig: { IPv4Address: '10.0.1.5' }, Aliases: ['db'] } } });
  assert.deepEqual(c.body.HostConfig.Dns, [SHOAL_DNS_ADDR]);
  assert.equal(c.connect, undefined);
});

test('several networks: the first at create, the others connected before start; the spec\'s nameservers after Shoal\'s', () => {
  const t = task({ NetworksAttachments: [attach(NET1, 'app', '10.0.1.5/24'), attach(NET2, 'back', '10.0.2.7/24', ['api'])] });
  t.Spec.ContainerSpec!.DNSConfig = { Nameservers: ['9.9.9.9'] };
  const c = build(t);
  assert.deepEqual(Object.keys(c.body.NetworkingConfig!.EndpointsConfig), [engineNetworkName(NET1)]);
  assert.deepEqual(c.connect, [{ network: engineNetworkName(NET2), config: { IPAMConfig: { IPv4Address: '10.0.2.7' }, Aliases: ['api'] } }]);
  assert.deepEqual(c.body.HostConfig.Dns, [SHOAL_DNS_ADDR, '9.9.9.9']);
});

test('networks that are all --internal: Shoal\'s DNS at the first one\'s gateway (no route to 169.254.53.53); one routed network is enough for the usual address', () => {
  const internal = (id: string, name: string, subnet: string, gw: string): Network => ({ ...net(id, name), Spec: { Name: name, Internal: true }, IPAM: { Configs: [{ Subnet: subnet, Gateway: gw }] } });
  const inAttach = (n: Network, addr: string): NetworkAttachment => ({ Network: n, Addresses: [addr] });
  const a = internal(NET1, 'secret', '10.0.7.0/24', '10.0.7.1');
  const b = internal(NET2, 'secret2', '10.0.8.0/24', '10.0.8.1');
  const t = task({ NetworksAttachments: [inAttach(a, '10.0.7.5/24'), inAttach(b, '10.0.8.5/24')] });
  t.Spec.ContainerSpec!.DNSConfig = { Nameservers: ['10.0.7.1', '9.9.9.9'] };
  assert.deepEqual(build(t).body.HostConfig.Dns, ['10.0.7.1', '9.9.9.9']);
  assert.deepEqual(build(task({ NetworksAttachments: [inAttach(a, '10.0.7.5/24'), attach(NET2, 'app', '10.0.2.7/24')] })).body.HostConfig.Dns, [SHOAL_DNS_ADDR]);
});

test('an attachment without an address fails the build (the task is rejected with it)', () => {
  assert.throws(() => build(task({ NetworksAttachments: [{ Network: net(NET1, 'app'), Addresses: [] }] })), /no address allocated on network app/);
});

test('host-mode ports are bound on the node; ingress-mode ones are not the container\'s', () => {
  const c = build(task({ Endpoint: { Ports: [
    { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' },
    { Protocol: 'udp', TargetPort: 53, PublishMode: 'host' },
    { Protocol: 'tcp', TargetPort: 443, PublishedPort: 30443, PublishMode: 'ingress' },
  ] } }));
  assert.deepEqual(c.body.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  assert.deepEqual(c.body.HostConfig.PortBindings, { '80/tcp': [{ HostPort: '8080' }], '53/udp': [{}] });
});
