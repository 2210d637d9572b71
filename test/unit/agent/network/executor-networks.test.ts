import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../../src/common/log';
import { EngineClient } from '../../../../src/engine/client';
import { DockerExecutor } from '../../../../src/agent/executor/docker-executor';
import type { ContainerCreate } from '../../../../src/agent/executor/container-config';
import { startFakeEngine } from '../../../helpers/fake-engine';

const config = (): ContainerCreate => ({
  name: 'web.1.t1',
  body: { Image: 'img', Labels: { 'com.docker.swarm.task.id': 't1' }, HostConfig: { RestartPolicy: { Name: 'no' }, NetworkMode: 'shoal-a' }, NetworkingConfig: { EndpointsConfig: { 'shoal-a': { IPAMConfig: { IPv4Address: '10.0.1.5' } } } } },
  connect: [{ network: 'shoal-b', config: { IPAMConfig: { IPv4Address: '10.0.2.5' }, Aliases: ['db'] } }],
});

test('create: the other networks are connected before the container is handed back; a refused connect removes it', async () => {
  const fake = await startFakeEngine();
  const engine = new EngineClient(fake.address);
  const seen: string[] = [];
  let refuse = false;
  fake.handle = (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      seen.push(`${req.method} ${req.url!.replace(/^\/v1\.41/, '')} ${body}`);
      const json = (status: number, v: unknown) => { res.writeHead(status, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(v)); };
      if (req.url!.includes('/containers/create')) return json(201, { Id: 'c1' });
      if (req.url!.includes('/connect')) return refuse ? json(404, { message: 'network shoal-b not found' }) : json(200, {});
      return json(204, {});
    });
  };
  try {
    const ex = new DockerExecutor(engine, silentLogger);
    assert.equal(await ex.create(config()), 'c1');
    assert.equal(seen.length, 2);
    assert.match(seen[0]!, /^POST \/containers\/create\?name=web\.1\.t1 .*"NetworkingConfig":\{"EndpointsConfig":\{"shoal-a"/);
    assert.equal(seen[1], 'POST /networks/shoal-b/connect {"Container":"c1","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.0.2.5"},"Aliases":["db"]}}');
    seen.length = 0;
    refuse = true;
    await assert.rejects(ex.create(config()), /connecting to network shoal-b failed: network shoal-b not found/);
    assert.match(seen[2]!, /^DELETE \/containers\/c1\?force=1/);
  } finally {
    engine.close();
    await fake.close();
  }
});

test('inspect: the ports the engine bound, one per binding, as host-mode ports', async () => {
  const fake = await startFakeEngine();
  const engine = new EngineClient(fake.address);
  fake.handle = (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({
      Id: 'c1', Name: '/web.1.t1', Config: { Labels: { 'com.docker.swarm.task.id': 't1' } }, State: { Running: true, Pid: 7, ExitCode: 0 },
      NetworkSettings: { Ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }], '53/udp': [{ HostIp: '0.0.0.0', HostPort: '32768' }], '9000/tcp': null } },
    }));
  };
  try {
    const info = await new DockerExecutor(engine, silentLogger).inspect('c1');
    assert.deepEqual(info?.ports, [
      { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' },
      { Protocol: 'udp', TargetPort: 53, PublishedPort: 32768, PublishMode: 'host' },
    ]);
  } finally {
    engine.close();
    await fake.close();
  }
});
