import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runDocker, waitFor, type DockerResult } from '../../helpers/daemon';
import { runLab } from '../../helpers/lab';
import { ensureBusyboxImage } from '../../helpers/images';

// `--with-registry-auth` against a real private registry: a one-host `shoal
// lab` (its registry wants a password), driven with the docker CLI as the
// seeds do. Lab 1 unless SHOAL_LAB_INDEX says otherwise (labs of other tests
// and people run beside it).
const LAB_INDEX = process.env.SHOAL_LAB_INDEX ?? '1';
const IMG = 'shoal-test/busybox:1';

const lab = (args: string[], timeoutMs = 240_000): Promise<DockerResult> => runLab(LAB_INDEX, args, timeoutMs);

describe('images from a private registry', () => {
  const dir = join(mkdtempSync('/tmp/shoal-regauth-it-'), 'lab');
  const config = mkdtempSync('/tmp/shoal-regauth-cfg-'); // the CLI's docker login lands here
  let dockerHost = '';
  let registry = '';
  const docker = (args: string[], timeoutMs = 120_000) => runDocker(dockerHost, args, { timeoutMs, env: { DOCKER_CONFIG: config } });
  const ok = async (args: string[], timeoutMs?: number): Promise<string> => {
    const r = await docker(args, timeoutMs);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  // An image only the registry has: pushed, then its name removed from the host.
  const privateImage = async (tag: string): Promise<string> => {
    const ref = `${registry}/reshape/private:${tag}`;
    await ok(['tag', IMG, ref]);
    await ok(['push', '-q', ref]);
    await ok(['rmi', ref]);
    return ref;
  };
  const taskLines = async (service: string): Promise<string[]> =>
    (await ok(['service', 'ps', service, '--no-trunc', '--format', '{{.DesiredState}}|{{.CurrentState}}|{{.Error}}'])).trim().split('\n');

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    const up = await lab(['up', '--hosts', '1', '--dir', dir]);
    assert.equal(up.code, 0, `lab up: ${up.stderr}`);
    dockerHost = up.stdout.trim().split(' ')[1]!;
    const m = /registry (\S+) user (\S+) password (\S+)/.exec(up.stderr);
    assert.ok(m, `lab up names its registry: ${up.stderr}`);
    registry = m[1]!;
    const login = await runDocker(dockerHost, ['login', '-u', m[2]!, '--password-stdin', registry], { input: m[3]!, env: { DOCKER_CONFIG: config } });
    assert.equal(login.code, 0, login.stderr);
    await ok(['swarm', 'init']);
  });

  after(async () => {
    const down = await lab(['down', '--dir', dir]);
    if (down.code !== 0) process.stderr.write(`lab down failed: ${down.stderr}\n`);
    rmSync(join(dir, '..'), { recursive: true, force: true });
    rmSync(config, { recursive: true, force: true });
  });

  test('with --with-registry-auth the private image runs; the credentials are never shown', { timeout: 180_000 }, async () => {
    const image = await privateImage('1');
    await ok(['service', 'create', '--name', 'priv', '--with-registry-auth', image, 'sleep', '300']); // waits for convergence
    assert.match((await taskLines('priv'))[0]!, /^Running\|Running/);
    const inspect = await ok(['service', 'inspect', 'priv']);
    assert.doesNotMatch(inspect, /PullOptions|RegistryAuth/);
    assert.doesNotMatch(await ok(['inspect', (await ok(['service', 'ps', '-q', '--no-trunc', 'priv'])).trim()]), /PullOptions|RegistryAuth/);

    // An update without the flag (registryAuthFrom=spec) keeps the credentials: a new private tag runs too.
    const next = await privateImage('3');
    await ok(['service', 'update', '--image', next, 'priv']);
    const lines = await taskLines('priv');
    assert.match(lines[0]!, /^Running\|Running/, lines.join('\n'));
  });

  test("without it the task fails with Docker's error; update --with-registry-auth then runs it (seed 000)", { timeout: 180_000 }, async () => {
    const image = await privateImage('2');
    await ok(['service', 'create', '-d', '--name', 'nopriv', image, 'sleep', '300']);
    const failed = await waitFor('a rejected task', async () => (await taskLines('nopriv')).find((l) => l.includes('Rejected')), 60_000, 500);
    assert.match(failed, new RegExp(`\\|"No such image: ${image.replace(/[.]/g, '\\.')}"$`));

    await ok(['service', 'update', '--with-registry-auth', 'nopriv']);
    assert.match((await taskLines('nopriv'))[0]!, /^Running\|Running/);
  });
});
