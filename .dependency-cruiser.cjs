// The import direction of Shoal's layers (docs/ARCHITECTURE.md, "Layers").
// `npm test` (and `npm run check:deps`) fails on any violation.
//
//   cli → daemon → api → manager → store → model → common
//   daemon → agent → agent/executor → engine → common
//   manager, agent → protocol → rpc → common ;  protocol → model
//   lab → common ;  cli → sim → agent, node (simulated nodes for scale figures)
//
// Each rule reads "code in FROM must not import TO". A folder's own files
// may always import each other.

// Known violations being removed by other work of issue 8; each entry names
// its way out. Delete the entry when that lands (the check then holds for it).
const PENDING = [];

// A path pattern for one folder of src/ (or several: layer('a', 'b')).
const layer = (...names) => `^src/(${names.join('|')})/`;
// Every folder of src/ except the ones named.
const allBut = (...names) => `^src/(?!(${names.join('|')})/)`;

const forbid = (name, comment, from, to) => ({
  name, comment, severity: 'error', from: { path: from }, to: { path: to },
});

module.exports = {
  forbidden: [
    forbid('common-is-the-bottom', 'common/ imports nothing else of Shoal', layer('common'), allBut('common')),
    forbid('model-only-common', 'the object model sits on common/ only', layer('model'), allBut('common', 'model')),
    forbid('rpc-only-common', 'the node-to-node channel knows no component', layer('rpc'), allBut('common', 'rpc')),
    forbid('protocol-only-rpc-model-common', 'wire contracts are shared by agent and manager, so they import neither',
      layer('protocol'), allBut('protocol', 'rpc', 'model', 'common')),
    forbid('engine-only-common-model', 'the engine client is the bottom of the node side', layer('engine'), allBut('engine', 'common', 'model')),
    forbid('store-not-above', 'the store is below the manager and knows no edge', layer('store'), layer('api', 'manager', 'agent', 'daemon', 'cli', 'lab', 'sim')),
    forbid('manager-not-edge-or-agent', 'the manager never reaches into the API, the agent or the daemon', layer('manager'), layer('api', 'agent', 'daemon', 'cli', 'lab', 'sim')),
    {
      name: 'agent-not-manager-or-store',
      comment: 'the agent talks to managers through protocol/ only (a worker has no store)',
      severity: 'error',
      from: { path: layer('agent'), pathNot: PENDING },
      to: { path: layer('manager', 'api', 'daemon', 'store', 'cli', 'lab', 'sim') },
    },
    {
      name: 'executor-only-engine-below',
      comment: 'the executor is Docker specifics under the agent: it never imports the agent around it',
      severity: 'error',
      from: { path: '^src/agent/executor/' },
      to: { path: ['^src/agent/(?!executor/)', layer('manager', 'api', 'store', 'daemon', 'cli', 'lab')] },
    },
    forbid('sim-is-node-side', 'simulated nodes are agents with a pretend engine: never the manager, the store, the API or the daemon',
      layer('sim'), layer('manager', 'store', 'api', 'daemon', 'cli', 'lab', 'engine')),
    forbid('only-cli-uses-sim', 'nothing but the command line starts simulated nodes', allBut('sim', 'cli'), layer('sim')),
    forbid('lab-only-common', 'the lab drives hosts from outside: it never imports the daemon, the manager or the agent', layer('lab'), allBut('common', 'lab')),
    {
      name: 'no-cycles',
      comment: 'dependencies point one way, also inside a folder',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: they tie layers together just the same.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
