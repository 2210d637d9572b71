// Test-only: applies one network view with the overlay component, in the
// network namespace this process runs in (the test starts it with
// `nsenter --net=/var/run/netns/HOST`), against that host's dockerd.
//   node apply-view.js ENGINE_ADDRESS NODE_ID VIEW_JSON_FILE [ensure]
// `ensure` also asks for the view's networks as a task would (and fails if one
// cannot be made). Exit 0 when done; the overlay's log lines go to stderr.
import { readFileSync } from 'node:fs';
import { createLogger } from '../../../src/common/log';
import { EngineClient } from '../../../src/engine/client';
import { Overlay } from '../../../src/agent/network/overlay/overlay';
import type { NodeNetworkView } from '../../../src/protocol/network-view';
import { VXLAN_ID_OPTION, type Network } from '../../../src/model/types';

async function main(): Promise<void> {
  const [engineAddr, nodeId, file, mode] = process.argv.slice(2);
  if (!engineAddr || !nodeId || !file) throw new Error('usage: apply-view ENGINE NODE_ID VIEW_FILE [ensure]');
  const view = JSON.parse(readFileSync(file, 'utf8')) as NodeNetworkView;
  const engine = new EngineClient(engineAddr);
  const overlay = new Overlay({ nodeId, engine, log: createLogger('info') });
  try {
    if (mode === 'ensure') {
      // As a task's attachments carry them.
      await overlay.ensure(view.Networks.map((n): Network => ({
        ID: n.ID, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '',
        Spec: { Name: n.Name, Internal: n.Internal },
        DriverState: { Name: 'overlay', Options: { [VXLAN_ID_OPTION]: String(n.VNI) } },
        IPAM: { Configs: [{ Subnet: n.Subnet, Gateway: n.Gateway }] },
      })));
    }
    const started = process.hrtime.bigint();
    await overlay.update(view);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    await overlay.close();
    process.stderr.write(`apply-view: round ${ms.toFixed(1)} ms\n`);
  } finally {
    engine.close();
  }
}

main().catch((err: unknown) => { process.stderr.write(`apply-view: ${(err as Error).message}\n`); process.exit(1); });
