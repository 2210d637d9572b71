import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { silentLogger } from '../../../src/common/log';
import { ShoalError } from '../../../src/common/errors';
import { commitWithReferences, removeUnreferenced } from '../../../src/manager/controlapi/references';
import { referenceKey } from '../../../src/store/keys';
import type { Service, ServiceSpec } from '../../../src/model/types';
import type { SecretObject } from '../../../src/store/objects';

const secret = (id: string, name: string): SecretObject => ({ ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: name }, SealedData: 'x' } as SecretObject);
const spec = (name: string, secretId: string, secretName: string): ServiceSpec => ({ Name: name, TaskTemplate: { ContainerSpec: { Image: 'img', Secrets: [{ SecretID: secretId, SecretName: secretName, File: { Name: secretName, UID: '0', GID: '0', Mode: 292 } }] } } } as ServiceSpec);
const service = (id: string, s: ServiceSpec): Service => ({ ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: s, Endpoint: { Spec: {} } });

test('secret references hold across two managers: a removal checked before a reference was made is refused', async () => {
  const backend = new MemoryBackend();
  const a = await Store.open(backend, silentLogger);
  const b = await Store.open(backend, silentLogger);
  await a.txn().create('secrets', secret('sec1', 'pw')).commit();
  await b.waitFor(a.revision);
  // Manager B checked "no service uses it" (its reference key absent) ...
  const seen = b.meta(referenceKey('secrets', 'sec1'))?.modRevision ?? 0;
  // ... then manager A made a service that references it ...
  const s = spec('web', 'sec1', 'pw');
  await commitWithReferences(a, s, (t) => t.create('services', service('svc1', s)));
  // ... so B's removal, conditioned on what it checked, is refused.
  const stale = b.get('secrets', 'sec1')!;
  await assert.rejects(b.txn().requireMeta(referenceKey('secrets', 'sec1'), seen).delete('secrets', stale).commit(), (e: unknown) => e instanceof ShoalError && e.kind === 'sequence');
  // With B caught up, the removal says why.
  await b.waitFor(a.revision);
  await assert.rejects(removeUnreferenced(b, 'secret', b.get('secrets', 'sec1')!), /secret 'pw' is in use by the following service: web/);
  // A removal first makes a later reference fail as "not found".
  await a.txn().create('secrets', secret('sec2', 'pw2')).commit();
  await b.waitFor(a.revision);
  const s2 = spec('db', 'sec2', 'pw2');
  const stale2 = a.get('secrets', 'sec2')!;
  await removeUnreferenced(b, 'secret', b.get('secrets', 'sec2')!);
  await assert.rejects(a.txn().create('services', service('svc2', s2)).requireVersion('secrets', stale2).commit());
  await a.waitFor(b.revision);
  await assert.rejects(commitWithReferences(a, s2, (t) => t.create('services', service('svc2', s2))), /secret not found: pw2/);
  // One secret at two targets: one guard (etcd refuses a key put twice in a transaction).
  const twice = spec('two', 'sec1', 'pw');
  twice.TaskTemplate!.ContainerSpec!.Secrets!.push({ SecretID: 'sec1', SecretName: 'pw', File: { Name: 'other', UID: '0', GID: '0', Mode: 256 } });
  await commitWithReferences(a, twice, (t) => t.create('services', service('svc3', twice)));
  assert.ok(a.get('services', 'svc3'));
  await a.close();
  await b.close();
});
