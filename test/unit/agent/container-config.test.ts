import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ContainerSpec, Task, TaskSpec } from '../../../src/model/types';
import { buildContainerConfig, containerName, extraHostEntries, stopGraceSeconds } from '../../../src/agent/executor/container-config';
import { expandTemplate, TemplateError } from '../../../src/agent/executor/templates';

const NODE = 'node00000000000000000000a1';

function task(spec: ContainerSpec, extra: Partial<Task> = {}, taskSpec: Partial<TaskSpec> = {}): Task {
  return {
    ID: 'task0000000000000000000001',
    Version: { Index: 1 },
    CreatedAt: '2026-01-01T00:00:00Z',
    UpdatedAt: '2026-01-01T00:00:00Z',
    Labels: {},
    Spec: { ContainerSpec: { Image: 'shoal-test/busybox:1', ...spec }, ...taskSpec },
    ServiceID: 'svc00000000000000000000001',
    Slot: 3,
    NodeID: NODE,
    Status: { Timestamp: '2026-01-01T00:00:00Z', State: 'assigned', Message: 'assigned' },
    DesiredState: 'running',
    ...extra,
  };
}

const build = (t: Task, more: { serviceLabels?: Record<string, string> } = {}) =>
  buildContainerConfig({ task: t, serviceName: 'web', nodeId: NODE, nodeHostname: 'host-a', nodePlatform: { Architecture: 'x86_64', OS: 'linux' }, ...more });

test('name: <service>.<slot>.<task>; global tasks (slot 0 or none) use the node ID', () => {
  assert.equal(containerName(task({}), 'web', NODE), `web.3.task0000000000000000000001`);
  assert.equal(containerName(task({}, { Slot: 0 }), 'web', NODE), `web.${NODE}.task0000000000000000000001`);
  assert.equal(containerName(task({}, { Slot: undefined }), 'web', NODE), `web.${NODE}.task0000000000000000000001`);
  assert.equal(build(task({})).name, 'web.3.task0000000000000000000001');
});

test('labels: the spec and task labels, then the swarm labels, which win', () => {
  const t = task({ Labels: { app: 'x', 'com.docker.swarm.task.id': 'forged' } }, { Labels: { fromTask: 'y' } });
  assert.deepEqual(build(t).body.Labels, {
    app: 'x',
    fromTask: 'y',
    'com.docker.swarm.node.id': NODE,
    'com.docker.swarm.service.id': 'svc00000000000000000000001',
    'com.docker.swarm.service.name': 'web',
    'com.docker.swarm.task': '',
    'com.docker.swarm.task.id': 'task0000000000000000000001',
    'com.docker.swarm.task.name': 'web.3.task0000000000000000000001',
  });
});

test('a minimal spec gives the image, the labels and restart policy "no", nothing else', () => {
  const { body } = build(task({}));
  assert.equal(body.Image, 'shoal-test/busybox:1');
  assert.deepEqual(body.HostConfig, { RestartPolicy: { Name: 'no' } });
  assert.deepEqual(Object.keys(body).sort(), ['HostConfig', 'Image', 'Labels']);
});

test('Command becomes the entrypoint and Args the command; Args alone feed the image entrypoint', () => {
  const both = build(task({ Command: ['sh', '-c'], Args: ['echo hi'] })).body;
  assert.deepEqual(both.Entrypoint, ['sh', '-c']);
  assert.deepEqual(both.Cmd, ['echo hi']);
  const args = build(task({ Args: ['sleep', '60'] })).body;
  assert.equal(args.Entrypoint, undefined);
  assert.deepEqual(args.Cmd, ['sleep', '60']);
});

test('process fields: Env, Dir, User, Groups, TTY, OpenStdin, ReadOnly, StopSignal, StopGracePeriod, Init', () => {
  const { body } = build(task({
    Env: ['A=1', 'B'], Dir: '/work', User: '1000:1000', Groups: ['audio', 'video'], TTY: true, OpenStdin: true,
    ReadOnly: true, StopSignal: 'SIGINT', StopGracePeriod: 2_500_000_000, Init: true,
  }));
  assert.deepEqual(body.Env, ['A=1', 'B']);
  assert.equal(body.WorkingDir, '/work');
  assert.equal(body.User, '1000:1000');
  assert.deepEqual(body.HostConfig.GroupAdd, ['audio', 'video']);
  assert.equal(body.Tty, true);
  assert.equal(body.OpenStdin, true);
  assert.equal(body.HostConfig.ReadonlyRootfs, true);
  assert.equal(body.StopSignal, 'SIGINT');
  assert.equal(body.StopTimeout, 3, 'rounded up to whole seconds');
  assert.equal(body.HostConfig.Init, true);
  assert.equal(build(task({ Init: false })).body.HostConfig.Init, false);
  assert.equal(build(task({ Init: null })).body.HostConfig.Init, undefined);
  assert.equal(stopGraceSeconds(undefined), 10, "SwarmKit's default grace period");
  assert.equal(stopGraceSeconds({ StopGracePeriod: 0 }), 0);
});

test('Hostname, Env values and mount sources expand the Go-template placeholders', () => {
  const t = task({
    Hostname: '{{.Service.Name}}-{{.Task.Slot}}-{{.Node.Hostname}}',
    Env: [
      'SVC={{.Service.Name}}', 'SID={{.Service.ID}}', 'NODE={{.Node.ID}}', 'HOST={{.Node.Hostname}}',
      'TID={{.Task.ID}}', 'TNAME={{.Task.Name}}', 'SLOT={{.Task.Slot}}', 'OS={{.Node.Platform.OS}}',
      'LBL={{index .Service.Labels "tier"}}', '{{.Service.Name}}=keys are not templates',
    ],
    Mounts: [{ Type: 'volume', Source: 'data-{{.Task.Slot}}', Target: '/data' }],
  });
  const { body } = build(t, { serviceLabels: { tier: 'front' } });
  assert.equal(body.Hostname, 'web-3-host-a');
  assert.deepEqual(body.Env, [
    'SVC=web', 'SID=svc00000000000000000000001', `NODE=${NODE}`, 'HOST=host-a',
    'TID=task0000000000000000000001', 'TNAME=web.3.task0000000000000000000001', 'SLOT=3', 'OS=linux',
    'LBL=front', '{{.Service.Name}}=keys are not templates',
  ]);
  assert.equal(body.HostConfig.Mounts![0]!.Source, 'data-3');
  // Global tasks: the slot placeholder is the node ID, like SwarmKit.
  assert.equal(build(task({ Hostname: '{{.Task.Slot}}' }, { Slot: 0 })).body.Hostname, NODE);
});

test('templates: whitespace and trim markers, unknown fields refuse the task', () => {
  const ctx = { Service: { ID: 's', Name: 'web', Labels: { a: '1' } }, Node: { ID: 'n', Hostname: 'h', Platform: { Architecture: 'x86_64', OS: 'linux' } }, Task: { ID: 't', Name: 'web.1.t', Slot: '1' } };
  assert.equal(expandTemplate('{{ .Service.Name }}', ctx), 'web');
  assert.equal(expandTemplate('a {{- .Task.Slot -}} b', ctx), 'a1b');
  assert.equal(expandTemplate('{{.Service.Labels.a}}', ctx), '1');
  assert.equal(expandTemplate('{{.Service.Labels.missing}}', ctx), '<no value>');
  assert.equal(expandTemplate('no templates', ctx), 'no templates');
  assert.throws(() => expandTemplate('{{.Service.Nope}}', ctx), TemplateError);
  assert.throws(() => expandTemplate('{{printf "%d" 1}}', ctx), TemplateError);
  assert.throws(() => build(task({ Hostname: '{{.Bogus}}' })), /template: expansion/);
});

test('mounts: bind, volume and tmpfs with their options go to HostConfig.Mounts', () => {
  const { body } = build(task({
    Mounts: [
      { Type: 'bind', Source: '/srv', Target: '/srv', ReadOnly: true, BindOptions: { Propagation: 'rslave' } },
      { Type: 'volume', Source: 'vol', Target: '/v', VolumeOptions: { NoCopy: true, Labels: { k: 'v' }, DriverConfig: { Name: 'local', Options: { o: 'x' } } } },
      { Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 1024, Mode: 0o700 } },
    ],
  }));
  assert.deepEqual(body.HostConfig.Mounts, [
    { Type: 'bind', Source: '/srv', Target: '/srv', ReadOnly: true, BindOptions: { Propagation: 'rslave' } },
    { Type: 'volume', Source: 'vol', Target: '/v', VolumeOptions: { NoCopy: true, Labels: { k: 'v' }, DriverConfig: { Name: 'local', Options: { o: 'x' } } } },
    { Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 1024, Mode: 0o700 } },
  ]);
});

test('health check, extra hosts, DNS, capabilities, sysctls, ulimits', () => {
  const { body } = build(task({
    Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 1e9, Timeout: 2e9, Retries: 3, StartPeriod: 5e9 },
    Hosts: ['10.0.0.1 db', '10.0.0.2 cache cache.local'],
    DNSConfig: { Nameservers: ['1.1.1.1'], Search: ['example.org'], Options: ['ndots:2'] },
    CapabilityAdd: ['NET_ADMIN'], CapabilityDrop: ['MKNOD'],
    Sysctls: { 'net.core.somaxconn': '1024' },
    Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 2048 }],
  }));
  assert.deepEqual(body.Healthcheck, { Test: ['CMD-SHELL', 'true'], Interval: 1e9, Timeout: 2e9, Retries: 3, StartPeriod: 5e9 });
  assert.deepEqual(body.HostConfig.ExtraHosts, ['db:10.0.0.1', 'cache:10.0.0.2', 'cache.local:10.0.0.2']);
  assert.deepEqual(body.HostConfig.Dns, ['1.1.1.1']);
  assert.deepEqual(body.HostConfig.DnsSearch, ['example.org']);
  assert.deepEqual(body.HostConfig.DnsOptions, ['ndots:2']);
  assert.deepEqual(body.HostConfig.CapAdd, ['NET_ADMIN']);
  assert.deepEqual(body.HostConfig.CapDrop, ['MKNOD']);
  assert.deepEqual(body.HostConfig.Sysctls, { 'net.core.somaxconn': '1024' });
  assert.deepEqual(body.HostConfig.Ulimits, [{ Name: 'nofile', Soft: 1024, Hard: 2048 }]);
  assert.deepEqual(extraHostEntries('   '), []);
  assert.deepEqual(extraHostEntries('10.0.0.9'), []);
  // An empty DNSConfig (what the CLI sends) sets nothing.
  assert.equal(build(task({ DNSConfig: {} })).body.HostConfig.Dns, undefined);
});

test('resources: limits and memory reservation; isolation is ignored', () => {
  const { body } = build(task({ Isolation: 'default' }, {}, {
    Resources: { Limits: { NanoCPUs: 1_500_000_000, MemoryBytes: 256 << 20, Pids: 100 }, Reservations: { NanoCPUs: 5e8, MemoryBytes: 64 << 20 } },
  }));
  assert.equal(body.HostConfig.NanoCpus, 1_500_000_000);
  assert.equal(body.HostConfig.Memory, 256 << 20);
  assert.equal(body.HostConfig.PidsLimit, 100);
  assert.equal(body.HostConfig.MemoryReservation, 64 << 20);
  assert.equal(JSON.stringify(body).includes('Isolation'), false);
  // The engine refuses a reservation above the limit: the limit alone is kept.
  const over = build(task({}, {}, { Resources: { Limits: { MemoryBytes: 64 << 20 }, Reservations: { MemoryBytes: 128 << 20 } } })).body;
  assert.equal(over.HostConfig.MemoryReservation, undefined);
  const reserveOnly = build(task({}, {}, { Resources: { Limits: {}, Reservations: { MemoryBytes: 32 << 20 } } })).body;
  assert.equal(reserveOnly.HostConfig.MemoryReservation, 32 << 20);
  assert.equal(reserveOnly.HostConfig.Memory, undefined);
});

test('log driver goes to HostConfig.LogConfig', () => {
  const { body } = build(task({}, {}, { LogDriver: { Name: 'json-file', Options: { 'max-size': '1m' } } }));
  assert.deepEqual(body.HostConfig.LogConfig, { Type: 'json-file', Config: { 'max-size': '1m' } });
  assert.deepEqual(build(task({}, {}, { LogDriver: { Name: 'none' } })).body.HostConfig.LogConfig, { Type: 'none', Config: {} });
});

test('privileges: no-new-privileges and SELinux labels become security options', () => {
  const { body } = build(task({ Privileges: { NoNewPrivileges: true, SELinuxContext: { User: 'u', Type: 't' } } }));
  assert.deepEqual(body.HostConfig.SecurityOpt, ['no-new-privileges=true', 'label=user:u', 'label=type:t']);
});
