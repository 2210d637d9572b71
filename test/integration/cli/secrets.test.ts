import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';
import { ensureBusyboxImage } from '../../helpers/images';
import { HostTaskFiles } from '../../../src/agent/executor/task-files';
import { silentLogger } from '../../../src/common/log';

// docker secret / docker config and their use by services, with the real
// docker CLI through one Shoal daemon in front of the host's dockerd.
const IMG = 'shoal-test/busybox:1';
const SECRET = 's3cret-Zq7x'; // distinctive enough to grep for
const RUN_ROOT = '/run/shoal';

interface TaskJson { ID: string; Status: { State: string; Err?: string; ContainerStatus?: { ContainerID?: string } }; DesiredState: string }

describe('secrets and configs driven by the docker CLI', () => {
  let shoal: ShoalHandle;
  let nodeId = '';

  const ok = async (args: string[], input?: string) => {
    const r = await shoal.docker(args, input !== undefined ? { input } : undefined);
    assert.equal(r.code, 0, `docker ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const fails = async (args: string[], input?: string) => {
    const r = await shoal.docker(args, input !== undefined ? { input } : undefined);
    assert.notEqual(r.code, 0, `docker ${args.join(' ')} should fail: ${r.stdout}`);
    return r.stderr;
  };
  const tasks = async (service: string): Promise<TaskJson[]> => {
    const r = await shoal.api('GET', `/v1.41/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { [service]: true } }))}`);
    return r.json as TaskJson[];
  };
  const running = async (service: string) => (await tasks(service)).filter((t) => t.Status.State === 'running' && t.DesiredState === 'running');
  const exec = async (cid: string, ...cmd: string[]) => {
    const r = await shoal.dockerEngine(['exec', cid, ...cmd]);
    return { code: r.code, out: r.stdout.trim(), err: r.stderr };
  };
  const secretsDir = () => join(RUN_ROOT, nodeId, 'secrets');
  // Every file under `dir` holding `needle` (grep -r; exit 1 means none).
  const grepFiles = (needle: string, dir: string): string[] => {
    try {
      return execFileSync('grep', ['-rl', '--', needle, dir], { encoding: 'utf8' }).split('\n').filter(Boolean);
    } catch (e) {
      if ((e as { status?: number }).status === 1) return [];
      throw e;
    }
  };

  before(async () => {
    await ensureBusyboxImage('/var/run/docker.sock', IMG);
    shoal = await startShoal({ hostname: 'shoal-secrets-1' });
    const out = await ok(['swarm', 'init']);
    nodeId = /current node \(([0-9a-z]{25})\)/.exec(out)![1]!;
  });
  after(async () => {
    await shoal?.cleanup();
    // Whatever a failed test left: the node's tmpfs mounts and runtime dir.
    if (nodeId) await new HostTaskFiles(RUN_ROOT, nodeId, silentLogger).releaseAll().catch(() => undefined);
  });

  test('secret and config create, ls, inspect; duplicates and oversized values are refused', async () => {
    const sid = (await ok(['secret', 'create', '--label', 'env=test', 'db_pass', '-'], SECRET)).trim();
    assert.match(sid, /^[0-9a-z]{25}$/);
    const cfgFile = join(shoal.dir, 'app.conf');
    writeFileSync(cfgFile, 'listen=8080\n');
    const cid = (await ok(['config', 'create', 'app_cfg', cfgFile])).trim();
    assert.match(cid, /^[0-9a-z]{25}$/);
    const tplFile = join(shoal.dir, 'tpl.conf');
    writeFileSync(tplFile, 'svc={{.Service.Name}} slot={{.Task.Slot}}\n');
    await ok(['config', 'create', '--template-driver', 'golang', 'tpl_cfg', tplFile]);

    const ls = await ok(['secret', 'ls']);
    assert.match(ls, /^ID\s+NAME\s+DRIVER\s+CREATED\s+UPDATED/);
    assert.match(ls, new RegExp(`^${sid}\\s+db_pass\\s`, 'm'));
    assert.match(await ok(['secret', 'ls', '--filter', 'label=env=test', '-q']), new RegExp(`^${sid}$`, 'm'));
    assert.match(await ok(['config', 'ls']), new RegExp(`^${cid}\\s+app_cfg\\s`, 'm'));

    // The newer CLI (API 1.41 negotiated) reads the same.
    const newer = await shoal.docker(['secret', 'ls', '--format', '{{.ID}} {{.Name}}'], { cli: '/usr/local/bin/docker' });
    assert.equal(newer.code, 0, newer.stderr);
    assert.equal(newer.stdout.trim(), `${sid} db_pass`);
    const inspected = JSON.parse(await ok(['secret', 'inspect', 'db_pass']))[0];
    assert.deepEqual(Object.keys(inspected), ['ID', 'Version', 'CreatedAt', 'UpdatedAt', 'Spec']);
    assert.equal(inspected.ID, sid);
    assert.deepEqual(inspected.Spec, { Name: 'db_pass', Labels: { env: 'test' } });
    assert.ok(!JSON.stringify(inspected).includes(Buffer.from(SECRET).toString('base64')));
    const cfg = JSON.parse(await ok(['config', 'inspect', 'app_cfg']))[0];
    assert.equal(Buffer.from(cfg.Spec.Data, 'base64').toString(), 'listen=8080\n');

    assert.match(await fails(['secret', 'create', 'db_pass', '-'], 'again'),
      /Error response from daemon: rpc error: code = AlreadyExists desc = secret db_pass already exists/);
    assert.match(await fails(['config', 'create', 'app_cfg', cfgFile]),
      /Error response from daemon: rpc error: code = AlreadyExists desc = config app_cfg already exists/);
    assert.match(await fails(['secret', 'create', 'huge', '-'], 'x'.repeat(512_000)),
      /rpc error: code = InvalidArgument desc = secret data must be larger than 0 and less than 512000 bytes/);
    assert.match(await fails(['secret', 'create', 'bad name', '-'], 'v'),
      /invalid name, only 64 \[a-zA-Z0-9-_.\] characters allowed/);
    assert.match(await fails(['secret', 'inspect', 'nosuch']), /[Nn]o such secret: nosuch|secret nosuch not found/);
    assert.equal((await ok(['secret', 'ls', '-q'])).trim().split('\n').length, 1, 'refusals created nothing');
  });

  test('a service gets its secrets on a tmpfs at /run/secrets and its configs at their targets, with owners and modes', async () => {
    await ok(['service', 'create', '-d', '--name', 'sec',
      '--secret', 'db_pass',
      '--secret', 'source=db_pass,target=other,uid=1000,gid=1000,mode=0400',
      '--config', 'source=app_cfg,target=/etc/app.conf',
      '--config', 'source=tpl_cfg,target=/etc/tpl.conf',
      IMG, 'sleep', '3600']);
    const [t] = await waitFor('sec running', async () => { const r = await running('sec'); return r.length === 1 ? r : undefined; }, 60_000);
    const cid = t!.Status.ContainerStatus!.ContainerID!;

    assert.deepEqual(await exec(cid, 'cat', '/run/secrets/db_pass'), { code: 0, out: SECRET, err: '' });
    assert.equal((await exec(cid, 'cat', '/run/secrets/other')).out, SECRET);
    assert.equal((await exec(cid, 'cat', '/etc/app.conf')).out, 'listen=8080');
    assert.equal((await exec(cid, 'cat', '/etc/tpl.conf')).out, 'svc=sec slot=1', 'golang templates expand');
    assert.equal((await exec(cid, 'stat', '-c', '%u %g %a', '/run/secrets/db_pass')).out, '0 0 444');
    assert.equal((await exec(cid, 'stat', '-c', '%u %g %a', '/run/secrets/other')).out, '1000 1000 400');
    assert.equal((await exec(cid, 'stat', '-c', '%u %g %a', '/etc/app.conf')).out, '0 0 444');
    // Read-only in the container, and on a tmpfs.
    assert.notEqual((await exec(cid, 'sh', '-c', 'echo x > /run/secrets/db_pass')).code, 0);
    const mounts = (await exec(cid, 'grep', '/run/secrets', '/proc/mounts')).out.split('\n');
    assert.equal(mounts.length, 2, mounts.join('\n'));
    for (const m of mounts) assert.match(m, /^\S+ \/run\/secrets\/(db_pass|other) tmpfs ro[, ]/);

    // On the host: one tmpfs for the task, under the node's runtime dir.
    const engineMounts = JSON.parse((await shoal.dockerEngine(['inspect', '--format', '{{json .HostConfig.Mounts}}', cid])).stdout) as Array<{ Source: string; Target: string }>;
    const sources = engineMounts.filter((m) => m.Target.startsWith('/run/secrets/')).map((m) => m.Source);
    assert.equal(sources.length, 2);
    const taskDir = join(secretsDir(), t!.ID);
    for (const s of sources) assert.equal(dirname(s), taskDir);
    assert.equal(execFileSync('stat', ['-f', '-c', '%T', taskDir], { encoding: 'utf8' }).trim(), 'tmpfs');
    assert.equal(execFileSync('stat', ['-c', '%a', taskDir], { encoding: 'utf8' }).trim(), '700');

    // The value is nowhere on disk: not in the data root (etcd's files included), not in the log.
    assert.ok(grepFiles('db_pass', shoal.dataRoot).some((f) => f.includes('/etcd/')), 'the grep does read etcd\'s files (the name is there)');
    for (const needle of [SECRET, Buffer.from(SECRET).toString('base64')]) {
      assert.deepEqual(grepFiles(needle, shoal.dataRoot), [], `${needle} on disk`);
      assert.ok(!shoal.logs().includes(needle), `${needle} in the daemon's log`);
    }
    assert.ok(existsSync(join(shoal.dataRoot, 'certificates', 'swarm-secrets.key')));
    assert.equal(execFileSync('stat', ['-c', '%a', join(shoal.dataRoot, 'certificates', 'swarm-secrets.key')], { encoding: 'utf8' }).trim(), '600');

    const pretty = await ok(['service', 'inspect', '--pretty', 'sec']);
    // The CLI gathers --secret flags in a Go map, so their order in the spec (and here) is random.
    assert.match(pretty, /Secrets:\s*\n(\s*Target:\s+\S+\s*\n\s*Source:\s+\S+\s*\n)*?\s*Target:\s+db_pass\s*\n\s*Source:\s+db_pass/);
    assert.match(pretty, /Secrets:\s*\n(\s*Target:\s+\S+\s*\n\s*Source:\s+\S+\s*\n)*?\s*Target:\s+other\s*\n\s*Source:\s+db_pass/);
    assert.match(pretty, /Configs:\s*\n(\s*Target:\s+\S+\s*\n\s*Source:\s+\S+\s*\n)*?\s*Target:\s+\/etc\/app\.conf\s*\n\s*Source:\s+app_cfg/);
  });

  test('in use: secret rm and config rm are refused with Docker\'s message', async () => {
    assert.match(await fails(['secret', 'rm', 'db_pass']),
      /Error response from daemon: rpc error: code = InvalidArgument desc = secret 'db_pass' is in use by the following service: sec/);
    assert.match(await fails(['config', 'rm', 'app_cfg']),
      /rpc error: code = InvalidArgument desc = config 'app_cfg' is in use by the following service: sec/);
    assert.match(await ok(['secret', 'ls', '-q']), /\w/);
    assert.match(await fails(['service', 'create', '-d', '--name', 'nosec', '--secret', 'nosuch', IMG, 'sleep', '3600']), /secret not found: nosuch/);
  });

  test('service update --secret-rm replaces the task; the old task\'s tmpfs goes', async () => {
    const [old] = await running('sec');
    const oldDir = join(secretsDir(), old!.ID);
    assert.ok(existsSync(oldDir));
    await ok(['service', 'update', '--secret-rm', 'db_pass', 'sec']);
    const [t] = await waitFor('a new sec task running', async () => {
      const r = await running('sec');
      return r.length === 1 && r[0]!.ID !== old!.ID ? r : undefined;
    }, 90_000);
    const cid = t!.Status.ContainerStatus!.ContainerID!;
    assert.notEqual((await exec(cid, 'cat', '/run/secrets/db_pass')).code, 0, 'the secret is gone from the new container');
    assert.equal((await exec(cid, 'cat', '/etc/app.conf')).out, 'listen=8080', 'the config is still there');
    await waitFor('old task tmpfs removed', async () => !existsSync(oldDir), 30_000);
    // Nothing references db_pass now (only the previous spec), so it can go.
    await ok(['secret', 'rm', 'db_pass']);
  });

  test('after service rm, secrets and configs can be removed and no tmpfs is left', async () => {
    const sid = (await ok(['secret', 'create', 'later', '-'], SECRET)).trim();
    await ok(['service', 'update', '--secret-add', 'source=later,target=/etc/later', 'sec']);
    const [t] = await waitFor('sec with the new secret', async () => {
      const r = await running('sec');
      const c = r[0]?.Status.ContainerStatus?.ContainerID;
      return c && (await exec(c, 'cat', '/etc/later')).out === SECRET ? r : undefined;
    }, 90_000);
    assert.ok(existsSync(join(secretsDir(), t!.ID)));
    assert.match(await fails(['secret', 'rm', sid]), /is in use by the following service: sec/);
    await ok(['service', 'rm', 'sec']);
    await waitFor('sec containers gone', async () => {
      // This node's only: the host engine may hold containers of other runs' daemons.
      const r = await shoal.dockerEngine(['ps', '-aq', '--filter', 'label=com.docker.swarm.service.name=sec', '--filter', `label=com.docker.swarm.node.id=${nodeId}`]);
      return r.code === 0 && r.stdout.trim() === '';
    }, 60_000);
    await waitFor('no task tmpfs left', async () => {
      const mounted = execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }).includes(secretsDir());
      return !mounted && (!existsSync(secretsDir()) || execFileSync('ls', [secretsDir()], { encoding: 'utf8' }).trim() === '');
    }, 30_000);
    await ok(['secret', 'rm', 'later']);
    await ok(['config', 'rm', 'app_cfg', 'tpl_cfg']);
    assert.equal((await ok(['secret', 'ls', '-q'])).trim(), '');
    assert.equal((await ok(['config', 'ls', '-q'])).trim(), '');
    assert.match(await fails(['secret', 'rm', 'later']), /secret later not found|[Nn]o such secret/);
    assert.deepEqual(grepFiles(SECRET, shoal.dataRoot), []);
  });

  test('across a daemon restart: running tasks keep their tmpfs, stored secrets still open', async () => {
    await ok(['secret', 'create', 'persist', '-'], SECRET);
    await ok(['service', 'create', '-d', '--name', 'before', '--secret', 'persist', IMG, 'sleep', '3600']);
    const [b] = await waitFor('before running', async () => { const r = await running('before'); return r.length === 1 ? r : undefined; }, 60_000);
    await shoal.restart();
    // The agent adopts the container as it is; its tmpfs is not swept.
    const [same] = await waitFor('before adopted', async () => { const r = await running('before'); return r.length === 1 ? r : undefined; }, 60_000);
    assert.equal(same!.ID, b!.ID);
    assert.ok(existsSync(join(secretsDir(), b!.ID)));
    assert.equal((await exec(b!.Status.ContainerStatus!.ContainerID!, 'cat', '/run/secrets/persist')).out, SECRET);
    // A new task after the restart: the key came back from the data root.
    await ok(['service', 'create', '-d', '--name', 'after', '--secret', 'source=persist,target=p2', IMG, 'sleep', '3600']);
    const [t] = await waitFor('after running', async () => { const r = await running('after'); return r.length === 1 ? r : undefined; }, 60_000);
    assert.equal((await exec(t!.Status.ContainerStatus!.ContainerID!, 'cat', '/run/secrets/p2')).out, SECRET);
    await ok(['service', 'rm', 'after']);
    await waitFor('after tmpfs gone', async () => !existsSync(join(secretsDir(), t!.ID)), 60_000);
  });

  test('swarm leave --force removes the task containers and every tmpfs of the node', async () => {
    const [b] = await running('before');
    assert.ok(b && existsSync(join(secretsDir(), b.ID)));
    await ok(['swarm', 'leave', '--force']);
    assert.ok(!existsSync(join(RUN_ROOT, nodeId)), 'the node\'s runtime dir is gone');
    assert.ok(!execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }).includes(join(RUN_ROOT, nodeId)));
  });
});
