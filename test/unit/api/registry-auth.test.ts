import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inject } from 'light-my-request';
import { controlFixture } from '../../helpers/control-fixture';
import { makeTask } from '../agent/fakes';
import { revealTaskForNode } from '../../../src/manager/controlapi/registry-auth';
import { SecretBox } from '../../../src/manager/controlapi/secret-box';
import type { Service, Task } from '../../../src/model/types';

// What `docker login` + `--with-registry-auth` sends: base64url of the JSON credentials.
const AUTH = Buffer.from(JSON.stringify({ username: 'lab', password: 's3cret-pw', serveraddress: '10.199.1.1:5000' })).toString('base64url');
const OTHER = Buffer.from(JSON.stringify({ username: 'lab', password: 'another-pw', serveraddress: '10.199.1.1:5000' })).toString('base64url');

async function fixture() {
  const f = await controlFixture();
  const send = async (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await inject(f.handler, { method: method as 'POST', url, payload: body === undefined ? undefined : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
    return { status: res.statusCode, json: res.payload ? JSON.parse(res.payload) : undefined, text: res.payload };
  };
  const stored = (id: string): Service => f.store.get('services', id)!;
  const sealed = (id: string, previous = false): string | undefined =>
    (previous ? stored(id).PreviousSpec : stored(id).Spec)?.TaskTemplate?.ContainerSpec?.PullOptions?.SealedRegistryAuth;
  return { ...f, send, stored, sealed };
}

const spec = (image = '10.199.1.1:5000/app:1') => ({ Name: 'app', TaskTemplate: { ContainerSpec: { Image: image } }, Mode: { Replicated: { Replicas: 1 } } });

test('X-Registry-Auth is stored sealed with the service and never shown', async () => {
  const f = await fixture();
  const created = await f.send('POST', '/v1.41/services/create', spec(), { 'X-Registry-Auth': AUTH });
  assert.equal(created.status, 201);
  const id = created.json.ID as string;
  const sealed = f.sealed(id);
  assert.match(sealed ?? '', /^v1:/, 'sealed like a secret value');
  const atRest = JSON.stringify(f.stored(id));
  assert.ok(!atRest.includes(AUTH) && !atRest.includes('s3cret-pw'), 'no credentials in clear at rest');
  for (const url of [`/v1.41/services/${id}`, `/v1.41/services/${id}?insertDefaults=true`, '/v1.41/services', '/v1.41/services?status=true']) {
    const res = await f.send('GET', url);
    assert.equal(res.status, 200);
    assert.ok(!res.text.includes('PullOptions') && !res.text.includes(sealed!), `${url} hides PullOptions`);
  }
  // A client cannot plant PullOptions of its own (not a field of Docker's API).
  const planted = await f.send('POST', '/v1.41/services/create', { ...spec(), Name: 'planted', TaskTemplate: { ContainerSpec: { Image: 'x', PullOptions: { SealedRegistryAuth: sealed } } } });
  assert.equal(planted.status, 201);
  assert.equal(f.sealed(planted.json.ID), undefined);
});

test('update: new credentials, the current spec\'s (registryAuthFrom=spec) or the previous spec\'s', async () => {
  const f = await fixture();
  const id = (await f.send('POST', '/v1.41/services/create', spec(), { 'X-Registry-Auth': AUTH })).json.ID as string;
  const first = f.sealed(id)!;
  const update = async (query: string, body: unknown, headers: Record<string, string> = {}) =>
    f.send('POST', `/v1.41/services/${id}/update?version=${f.stored(id).Version.Index}${query}`, body, headers);

  // What `docker service update --image …` sends without --with-registry-auth: the credentials stay, unchanged.
  assert.equal((await update('&registryAuthFrom=spec', spec('10.199.1.1:5000/app:2'))).status, 200);
  assert.equal(f.sealed(id), first, 'same sealed value: tasks are not redeployed for a re-seal');
  // The same credentials sent again keep their sealed form too.
  assert.equal((await update('', spec('10.199.1.1:5000/app:2'), { 'X-Registry-Auth': AUTH })).status, 200);
  assert.equal(f.sealed(id), first);
  // New credentials are sealed anew.
  assert.equal((await update('', spec('10.199.1.1:5000/app:3'), { 'X-Registry-Auth': OTHER })).status, 200);
  const second = f.sealed(id)!;
  assert.notEqual(second, first);
  assert.equal(f.sealed(id, true), first);
  // A client-side rollback takes the previous spec's credentials.
  assert.equal((await update('&registryAuthFrom=previous-spec', spec('10.199.1.1:5000/app:2'))).status, 200);
  assert.equal(f.sealed(id), first);
  // A server-side rollback takes the previous spec whole.
  assert.equal((await update('&rollback=previous', spec())).status, 200);
  assert.equal(f.sealed(id), second);
  const bad = await update('&registryAuthFrom=elsewhere', spec());
  assert.equal(bad.status, 400);
  assert.equal(bad.json.message, 'unsupported registryAuthFrom value');
});

test('revealTaskForNode: the credentials in clear for the task\'s node, nothing changed in place', async () => {
  const f = await fixture();
  const id = (await f.send('POST', '/v1.41/services/create', spec(), { 'X-Registry-Auth': AUTH })).json.ID as string;
  const taskSpec = structuredClone(f.stored(id).Spec.TaskTemplate!);
  const task: Task = makeTask('t1', { ServiceID: id, Spec: taskSpec });
  const before = structuredClone(task);
  const revealed = f.control.services.revealTask(task);
  assert.deepEqual(revealed.Spec.ContainerSpec?.PullOptions, { RegistryAuth: AUTH });
  assert.deepEqual(task, before, 'the shared task spec is not mutated');
  // Tasks without credentials are handed on as they are.
  const plain = makeTask('t2', { ServiceID: id });
  assert.equal(revealTaskForNode(plain, new SecretBox(SecretBox.generateKey())), plain);
  // Sealed for another service, or under another key: left out, never an exception.
  assert.equal(f.control.services.revealTask({ ...task, ServiceID: 'another' }).Spec.ContainerSpec?.PullOptions, undefined);
  assert.equal(revealTaskForNode(task, new SecretBox(SecretBox.generateKey())).Spec.ContainerSpec?.PullOptions, undefined);

  // The tasks API hides PullOptions like the services API.
  await f.store.txn().create('tasks', task).commit();
  for (const url of ['/v1.41/tasks', '/v1.41/tasks/t1']) {
    const res = await f.send('GET', url);
    assert.equal(res.status, 200, res.text);
    assert.ok(!res.text.includes('PullOptions'), `${url} hides PullOptions`);
  }
});
