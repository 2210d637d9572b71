import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShoalError } from '../../../src/common/errors';
import { matchesConstraints, parseConstraints } from '../../../src/model/constraints';
import { makeNode } from '../orchestrator/fixtures';

const bad: Array<[string, string]> = [
  ['node.role=manager', 'constraint expected one operator from ==, !='],
  ['node.labels.a>1', 'constraint expected one operator from ==, !='],
  ['==manager', "key '' is invalid"],
  ['no de==x', "key 'no de' is invalid"],
  ['node.labels.a==', "value '' is invalid"],
  ['node.labels.a==b<c', "value 'b<c' is invalid"],
  ['node.labels.a!==b', "key 'node.labels.a!' is invalid"],
];
for (const [expr, message] of bad) {
  test(`parseConstraints refuses ${JSON.stringify(expr)} with SwarmKit's message`, () => {
    assert.throws(() => parseConstraints([expr]), (e: unknown) => e instanceof ShoalError && e.kind === 'invalid' && e.message === message);
  });
}

test('parseConstraints accepts both operators and trims around them', () => {
  const c = parseConstraints(['node.role == manager', 'node.labels.Zone!=eu-1', 'engine.labels.ssd==true']);
  assert.deepEqual(c.map((x) => [x.key, x.op, x.value]), [['node.role', '==', 'manager'], ['node.labels.Zone', '!=', 'eu-1'], ['engine.labels.ssd', '==', 'true']]);
});

const node = makeNode('abc123', {
  hostname: 'Worker-1', role: 'worker', os: 'linux', arch: 'x86_64',
  labels: { zone: 'EU', Tier: 'front' }, engineLabels: { ssd: 'true' }, addr: '192.168.1.20',
});
const matches: Array<[string, boolean]> = [
  ['node.id==abc123', true],
  ['node.id!=abc123', false],
  ['node.hostname==worker-1', true],        // values compare case-insensitively
  ['NODE.HOSTNAME==Worker-1', true],        // keys too
  ['node.role==worker', true],
  ['node.role==manager', false],
  ['node.platform.os==Linux', true],
  ['node.platform.arch==x86_64', true],
  ['node.labels.zone==eu', true],
  ['node.labels.Zone==eu', false],          // label names are exact
  ['node.labels.Zone!=eu', true],           // missing label is "", so != matches
  ['node.labels.Tier==front', true],
  ['engine.labels.ssd==true', true],
  ['engine.labels.ssd!=true', false],
  ['node.ip==192.168.1.20', true],
  ['node.ip==192.168.1.0/24', true],
  ['node.ip!=10.0.0.0/8', true],
  ['node.ip==10.0.0.0/8', false],
  ['node.ip==not-an-ip', false],            // malformed address never matches
  ['node.color==blue', false],              // unknown key never matches
  ['node.color!=blue', false],
];
for (const [expr, want] of matches) {
  test(`matchesConstraints: ${expr} → ${want}`, () => {
    assert.equal(matchesConstraints(node, parseConstraints([expr])), want);
  });
}

test('constraints are ANDed', () => {
  assert.equal(matchesConstraints(node, parseConstraints(['node.role==worker', 'node.labels.zone==eu'])), true);
  assert.equal(matchesConstraints(node, parseConstraints(['node.role==worker', 'node.labels.zone==us'])), false);
});
