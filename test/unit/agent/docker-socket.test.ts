import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeDockerSocket, type ContainerCreate } from '../../../src/agent/executor/container-config';

const config = (mounts: NonNullable<ContainerCreate['body']['HostConfig']['Mounts']>): ContainerCreate => ({
  name: 'c', body: { Image: 'i', Labels: {}, HostConfig: { RestartPolicy: { Name: 'no' }, Mounts: mounts } },
});

test('a bind mount of the engine socket gets the daemon\'s socket; everything else is untouched', () => {
  const c = config([
    { Type: 'bind', Source: '/var/run/docker.sock', Target: '/var/run/docker.sock', ReadOnly: true },
    { Type: 'bind', Source: '/run/docker.sock/', Target: '/x.sock' },
    { Type: 'bind', Source: '/var/lib/docker/volumes', Target: '/v' },
    { Type: 'volume', Source: '/var/run/docker.sock', Target: '/y' },
  ]);
  const out = routeDockerSocket(c, '/run/shoal/api.sock');
  assert.deepEqual(out.body.HostConfig.Mounts!.map((m) => m.Source), ['/run/shoal/api.sock', '/run/shoal/api.sock', '/var/lib/docker/volumes', '/var/run/docker.sock']);
  assert.equal(out.body.HostConfig.Mounts![0]!.ReadOnly, true);
  assert.equal(c.body.HostConfig.Mounts![0]!.Source, '/var/run/docker.sock', 'the input is not changed');
  assert.equal(routeDockerSocket(c, undefined), c);
  const none = config([{ Type: 'bind', Source: '/etc', Target: '/etc' }]);
  assert.equal(routeDockerSocket(none, '/s'), none);
});
