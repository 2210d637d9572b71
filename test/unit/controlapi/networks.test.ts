import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlFixture } from '../../helpers/control-fixture';
import { newIngressNetwork } from '../../../src/manager/controlapi/networks';
import { validateNetworkSpec } from '../../../src/manager/controlapi/validate-network';
import { parseIpv4Cidr } from '../../../src/manager/controlapi/ipv4';
import type { Network, NetworkSpec } from '../../../src/model/types';
import { ShoalError } from '../../../src/common/errors';

const overlay = (name: string, extra: Partial<NetworkSpec> = {}): NetworkSpec => ({ Name: name, DriverConfiguration: { Name: 'overlay' }, ...extra });
const stored = (spec: NetworkSpec, id = 'n1'): Network => ({ ID: id, Version: { Index: 1 }, CreatedAt: 't', UpdatedAt: 't', Spec: spec });
const refused = (spec: NetworkSpec | undefined, existing: Network[], kind: string, text: RegExp) => {
  assert.throws(() => validateNetworkSpec(spec, existing), (e: unknown) => e instanceof ShoalError && e.kind === kind && text.test(e.message));
};

test('validateNetworkSpec: SwarmKit\'s checks and texts, and Shoal\'s own', () => {
  validateNetworkSpec(overlay('ok', { IPAMOptions: { Driver: { Name: 'default' }, Configs: [{ Subnet: '10.1.0.0/24', Gateway: '10.1.0.1', Range: '10.1.0.128/25' }] } }), []);
  refused(overlay(''), [], 'invalid', /meta: name must be provided/);
  refused(overlay('bad.name'), [], 'invalid', /name must be valid as a DNS name component/);
  refused(overlay('x', { Ingress: true, Attachable: true }), [], 'invalid', /ingress network cannot be attachable/);
  refused(overlay('x', { Labels: { 'com.docker.swarm.predefined': 'true' } }), [], 'forbidden', /cannot be applied by users/);
  refused({ Name: 'x', DriverConfiguration: { Name: 'weave' } }, [], 'invalid', /plugin weave not supported/);
  refused(overlay('x', { DriverConfiguration: { Name: 'overlay', Options: { foo: 'bar' } } }), [], 'invalid', /option foo is not supported/);
  refused(overlay('x', { DriverConfiguration: { Name: 'overlay', Options: { 'com.docker.network.driver.mtu': '9' } } }), [], 'invalid', /invalid MTU/);
  refused(overlay('x', { IPAMOptions: { Configs: [{ Subnet: '10.1.0.0' }] } }), [], 'invalid', /invalid subnet 10\.1\.0\.0$/);
  refused(overlay('x', { IPAMOptions: { Configs: [{ Subnet: '10.1.0.0/24', Gateway: '10.2.0.1' }] } }), [], 'invalid', /does not contain gateway 10\.2\.0\.1/);
  refused(overlay('x', { IPAMOptions: { Configs: [{ Subnet: '10.1.0.0/24', Range: '10.3.0.0/25' }] } }), [], 'invalid', /does not contain range/);
  refused(overlay('x', { IPAMOptions: { Configs: [{ Subnet: '10.1.0.0/24' }, { Subnet: '10.2.0.0/24' }] } }), [], 'invalid', /one subnet per swarm network/);
  refused(overlay('x', { IPAMOptions: { Driver: { Name: 'infoblox' } } }), [], 'invalid', /plugin infoblox not supported/);
  refused(overlay('x', { IPv6Enabled: true }), [], 'invalid', /IPv6/);
  const ingress = newIngressNetwork({ DefaultAddrPool: ['10.0.0.0/8'], SubnetSize: 24 }, 't');
  refused(overlay('x', { IPAMOptions: { Configs: [{ Subnet: '10.0.0.128/25' }] } }), [ingress], 'forbidden', /Pool overlaps with other one on this address space/);
  // An allocated subnet counts as much as a requested one.
  const allocated = { ...stored(overlay('b')), IPAM: { Configs: [{ Subnet: '10.0.5.0/24' }] } };
  refused(overlay('x', { IPAMOptions: { Configs: [{ Subnet: '10.0.0.0/16' }] } }), [allocated], 'forbidden', /overlaps 10\.0\.5\.0\/24 of network b/);
  refused(overlay('x', { Ingress: true }), [ingress], 'conflict', new RegExp(`ingress network \\(${ingress.ID}\\) is already present`));
});

test('the default ingress network takes the pool\'s first block', () => {
  const d = newIngressNetwork({ DefaultAddrPool: ['10.0.0.0/8'], SubnetSize: 24 }, 't');
  assert.deepEqual(d.Spec.IPAMOptions?.Configs, [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }]);
  assert.equal(d.Spec.Ingress, true);
  assert.equal(d.Spec.Name, 'ingress');
  const c = newIngressNetwork({ DefaultAddrPool: ['172.30.0.0/16'], SubnetSize: 26 }, 't');
  assert.deepEqual(c.Spec.IPAMOptions?.Configs, [{ Subnet: '172.30.0.0/26', Gateway: '172.30.0.1' }]);
  assert.deepEqual(parseIpv4Cidr('10.1.2.3/16'), { base: 10 * 2 ** 24 + 2 ** 16, bits: 16, size: 65536 });
  assert.equal(parseIpv4Cidr('10.1.2.3/33'), undefined);
});

test('networks API: create, name clash, services resolved to IDs, removal refused while in use, prune', async () => {
  const fx = await controlFixture();
  const nets = fx.control.networks;
  const { ID } = await nets.create(overlay('front', { Labels: { a: '1' } }));
  await assert.rejects(nets.create(overlay('front')), /network with name front already exists/);
  assert.equal(nets.resolve(ID.slice(0, 6)).Spec.Name, 'front');
  const r = nets.resource(nets.resolve('front'));
  assert.equal(r.Scope, 'swarm');
  assert.equal(r.Driver, 'overlay');

  const svc = await fx.control.services.create({ Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'busybox' } }, Networks: [{ Target: 'front', Aliases: ['w'] }] });
  const s = fx.control.services.inspect(svc.ID, false);
  assert.deepEqual(s.Spec.TaskTemplate?.Networks, [{ Target: ID, Aliases: ['w'] }]);
  assert.equal(s.Spec.Networks, undefined);
  await assert.rejects(fx.control.services.create({ Name: 'x', TaskTemplate: { ContainerSpec: { Image: 'busybox' }, Networks: [{ Target: 'ingress' }] } }),
    /Service cannot be explicitly attached to the ingress network "ingress"/);
  await assert.rejects(fx.control.services.create({ Name: 'x', TaskTemplate: { ContainerSpec: { Image: 'busybox' }, Networks: [{ Target: 'nope' }] } }),
    (e: unknown) => e instanceof ShoalError && e.kind === 'not_found' && e.message === 'network nope not found');

  await assert.rejects(nets.remove('front'), new RegExp(`network ${ID} is in use by service ${svc.ID}`));
  const pub = await fx.control.services.create({ Name: 'pub', TaskTemplate: { ContainerSpec: { Image: 'busybox' } }, EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8080 }] } });
  await assert.rejects(nets.remove('ingress'), new RegExp(`ingress network cannot be removed because service ${pub.ID} depends on it`));

  await nets.create(overlay('unused', { Labels: { a: '1' } }));
  await nets.create(overlay('other'));
  const pruned = await nets.prune(new Map([['label', ['a=1']]]));
  assert.deepEqual(pruned, ['unused']);
  assert.deepEqual(nets.all().map((n) => n.Spec.Name).sort(), ['front', 'ingress', 'other']);

  await fx.control.services.remove(svc.ID);
  await fx.control.services.remove(pub.ID);
  await nets.remove('front');
  await nets.remove('ingress');
  await assert.rejects(fx.control.services.create({ Name: 'pub2', TaskTemplate: { ContainerSpec: { Image: 'busybox' } }, EndpointSpec: { Ports: [{ TargetPort: 80 }] } }),
    /service needs ingress network, but no ingress network is present/);
});
