import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeGo, goTypeName, int, map, slice, str, struct } from '../../../src/common/go/go-json';
import { ConfigSpec, NodeSpec, ServiceSpec, SwarmSpec } from '../../../src/api/decode/docker-types';
import { ShoalError } from '../../../src/common/errors';

// The message Go's encoding/json gives, which dockerd returns as a 400.
function refused(value: unknown, type: Parameters<typeof decodeGo>[1], message: string): void {
  assert.throws(() => decodeGo(value, type), (e: unknown) => {
    assert.ok(e instanceof ShoalError, 'a ShoalError');
    assert.equal(e.kind, 'invalid');
    assert.equal(e.message, message);
    return true;
  });
}

test('field names match case-insensitively and come out in canonical case and order', () => {
  const got = decodeGo(JSON.parse('{"mode":{"replicated":{"replicas":5}},"taskTEMPLATE":{"containerspec":{"image":"img","ARGS":["a"]}},"name":"web"}'), ServiceSpec);
  assert.deepEqual(got, { Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'img', Args: ['a'] } }, Mode: { Replicated: { Replicas: 5 } } });
  assert.deepEqual(Object.keys(got as object), ['Name', 'TaskTemplate', 'Mode'], 'declaration order');
  assert.deepEqual(decodeGo({ Mode: { global: {} } }, ServiceSpec), { Mode: { Global: {} } });
  assert.deepEqual(decodeGo({ UpdateConfig: { order: 'start-first', PARALLELISM: 2 } }, ServiceSpec), { UpdateConfig: { Parallelism: 2, Order: 'start-first' } });
  assert.deepEqual(decodeGo({ templating: { name: 'golang' }, data: 'eA==' }, ConfigSpec), { Data: 'eA==', Templating: { Name: 'golang' } });
  // The swagger's HealthCheck spelling reaches moby's Healthcheck field.
  assert.deepEqual(decodeGo({ TaskTemplate: { ContainerSpec: { HealthCheck: { Retries: 2 } } } }, ServiceSpec), { TaskTemplate: { ContainerSpec: { Healthcheck: { Retries: 2 } } } });
  // Go folds the Kelvin sign to k (and long s to s); JS's toLowerCase alone would not.
  assert.deepEqual(decodeGo({ '\u212aeepOldSnapshots': 1 }, struct('swarm.X', [['KeepOldSnapshots', int('uint64')]])), { KeepOldSnapshots: 1 });
});

test('an exact match wins over a case-insensitive one; otherwise the first field declared', () => {
  const t = struct('pkg.T', [['Id', str()], ['ID', str()]]);
  assert.deepEqual(decodeGo({ ID: 'exact' }, t), { ID: 'exact' });
  assert.deepEqual(decodeGo({ Id: 'exact' }, t), { Id: 'exact' });
  assert.deepEqual(decodeGo({ id: 'folded' }, t), { Id: 'folded' }, 'the first declared field takes the folded key');
});

test('unknown fields are dropped, at every depth, without a type check', () => {
  const got = decodeGo({ Name: 'x', Bogus: { deep: [1, 2] }, TaskTemplate: { ContainerSpec: { Image: 'i', OomScoreAdj: 'anything' }, Extra: 1 } }, ServiceSpec);
  assert.deepEqual(got, { Name: 'x', TaskTemplate: { ContainerSpec: { Image: 'i' } } });
});

test('a key repeated in another case decodes into the same field: objects merge, scalars take the last', () => {
  const got = decodeGo({ Mode: { Replicated: { Replicas: 1 } }, mode: { Global: {} }, Name: 'a', name: 'b' }, ServiceSpec);
  assert.deepEqual(got, { Name: 'b', Mode: { Replicated: { Replicas: 1 }, Global: {} } });
  assert.deepEqual(decodeGo({ Labels: { a: '1' }, labels: { b: '2' } }, NodeSpec), { Labels: { a: '1', b: '2' } });
  // Any map key is a plain key, as in Go.
  const odd = decodeGo<{ Labels: Record<string, string> }>(JSON.parse('{"Labels":{"__proto__":"x","constructor":"y"}}'), NodeSpec);
  assert.deepEqual(Object.entries(odd.Labels), [['__proto__', 'x'], ['constructor', 'y']]);
  assert.deepEqual(JSON.parse(JSON.stringify(structuredClone(odd))), JSON.parse('{"Labels":{"__proto__":"x","constructor":"y"}}'));
});

test('wrong JSON types are refused with Go\'s message, naming the innermost struct and the field path', () => {
  refused({ Mode: 'replicated' }, ServiceSpec, 'json: cannot unmarshal string into Go struct field ServiceSpec.Mode of type swarm.ServiceMode');
  refused({ TaskTemplate: { ContainerSpec: { Image: 5 } } }, ServiceSpec,
    'json: cannot unmarshal number into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Image of type string');
  refused({ TaskTemplate: { Placement: { Platforms: 'linux' } } }, ServiceSpec,
    'json: cannot unmarshal string into Go struct field Placement.TaskTemplate.Placement.Platforms of type []swarm.Platform');
  refused({ TaskTemplate: { ContainerSpec: { Secrets: {} } } }, ServiceSpec,
    'json: cannot unmarshal object into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Secrets of type []*swarm.SecretReference');
  // Array elements and map values keep their field's path.
  refused({ TaskTemplate: { ContainerSpec: { Mounts: [{ Target: '/a' }, 'x'] } } }, ServiceSpec,
    'json: cannot unmarshal string into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Mounts of type mount.Mount');
  refused({ Labels: { a: 1 } }, ServiceSpec, 'json: cannot unmarshal number into Go struct field ServiceSpec.Labels of type string');
  refused({ TaskTemplate: { ContainerSpec: { TTY: 'true' } } }, ServiceSpec,
    'json: cannot unmarshal string into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.TTY of type bool');
  refused({ Role: ['manager'] }, NodeSpec, 'json: cannot unmarshal array into Go struct field NodeSpec.Role of type swarm.NodeRole');
  // The body itself of the wrong kind.
  refused([], ServiceSpec, 'json: cannot unmarshal array into Go value of type swarm.ServiceSpec');
  refused('spec', NodeSpec, 'json: cannot unmarshal string into Go value of type swarm.NodeSpec');
});

test('numbers out of the Go type\'s range, or not integers, are refused with the number', () => {
  refused({ Mode: { Replicated: { Replicas: -1 } } }, ServiceSpec,
    'json: cannot unmarshal number -1 into Go struct field ReplicatedService.Mode.Replicated.Replicas of type uint64');
  refused({ Mode: { Replicated: { Replicas: 1.5 } } }, ServiceSpec,
    'json: cannot unmarshal number 1.5 into Go struct field ReplicatedService.Mode.Replicated.Replicas of type uint64');
  refused({ EndpointSpec: { Ports: [{ TargetPort: 2 ** 32 }] } }, ServiceSpec,
    'json: cannot unmarshal number 4294967296 into Go struct field PortConfig.EndpointSpec.Ports.TargetPort of type uint32');
  refused({ UpdateConfig: { MaxFailureRatio: 1e39 } }, ServiceSpec,
    'json: cannot unmarshal number 1e+39 into Go struct field UpdateConfig.UpdateConfig.MaxFailureRatio of type float32');
});

test('durations are int64 nanoseconds: strings and fractions are refused, never NaN', () => {
  assert.deepEqual(decodeGo({ UpdateConfig: { Delay: 2e9, Monitor: -1 } }, ServiceSpec), { UpdateConfig: { Delay: 2e9, Monitor: -1 } });
  refused({ UpdateConfig: { Delay: '10s' } }, ServiceSpec,
    'json: cannot unmarshal string into Go struct field UpdateConfig.UpdateConfig.Delay of type time.Duration');
  refused({ TaskTemplate: { RestartPolicy: { Delay: 0.5 } } }, ServiceSpec,
    'json: cannot unmarshal number 0.5 into Go struct field RestartPolicy.TaskTemplate.RestartPolicy.Delay of type time.Duration');
  refused({ Dispatcher: { HeartbeatPeriod: true } }, SwarmSpec,
    'json: cannot unmarshal bool into Go struct field DispatcherConfig.Dispatcher.HeartbeatPeriod of type time.Duration');
});

test('null is Go\'s: pointers, slices and maps become nil; other values are left as they were', () => {
  assert.deepEqual(decodeGo({ Name: null, Labels: null, UpdateConfig: null, Mode: null, TaskTemplate: { ContainerSpec: null } }, ServiceSpec), { TaskTemplate: {} });
  // A later null clears a pointer set by an earlier key, but not a plain struct.
  assert.deepEqual(decodeGo({ UpdateConfig: { Parallelism: 2 }, updateconfig: null, Mode: { Global: {} }, mode: null }, ServiceSpec), { Mode: { Global: {} } });
  // Elements: a nil pointer stays null (validation refuses it), a value is its zero.
  assert.deepEqual(decodeGo({ TaskTemplate: { ContainerSpec: { Secrets: [null], Args: [null, 'a'], Labels: { k: null } } } }, ServiceSpec),
    { TaskTemplate: { ContainerSpec: { Labels: { k: '' }, Args: ['', 'a'], Secrets: [null] } } });
  assert.deepEqual(decodeGo(null, NodeSpec), {});
});

test('nested maps and arrays of structs decode element by element', () => {
  const t = struct('pkg.T', [['M', map(slice(struct('pkg.E', [['N', int('int64')]])))]]);
  assert.deepEqual(decodeGo({ m: { a: [{ n: 1, x: 0 }, { N: 2 }], b: [] } }, t), { M: { a: [{ N: 1 }, { N: 2 }], b: [] } });
  refused({ M: { a: [{ N: 'x' }] } }, t, 'json: cannot unmarshal string into Go struct field E.M.N of type int64');
  assert.equal(goTypeName(t), 'pkg.T');
  assert.equal(goTypeName(map(slice(str(), true))), 'map[string][]*string');
});

test('[]byte is base64, checked as Go\'s StdEncoding', () => {
  assert.deepEqual(decodeGo({ Name: 'c', Data: 'aGk=' }, ConfigSpec), { Name: 'c', Data: 'aGk=' });
  refused({ Data: 'a*==' }, ConfigSpec, 'illegal base64 data at input byte 1');
  refused({ Data: 'aGkxa' }, ConfigSpec, 'illegal base64 data at input byte 4');
  refused({ Data: 12 }, ConfigSpec, 'json: cannot unmarshal number into Go struct field ConfigSpec.Data of type []uint8');
});
