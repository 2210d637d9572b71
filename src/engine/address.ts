import { Agent } from 'node:http';
import { invalid } from '../common/errors';

// Where the host's dockerd listens: unix:///var/run/docker.sock or tcp://host:port
// (http:// is accepted as a synonym of tcp://).
export type EngineEndpoint = { socketPath: string } | { host: string; port: number };

export function parseEngineAddress(address: string): EngineEndpoint {
  if (address.startsWith('unix://')) {
    const socketPath = address.slice('unix://'.length);
    if (!socketPath) throw invalid(`invalid engine address ${address}`);
    return { socketPath };
  }
  const m = /^(?:tcp|http):\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(address);
  if (!m) throw invalid(`invalid engine address ${address}: use unix:///path or tcp://host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

// A keep-alive agent with no socket limit: long-lived streams (logs -f,
// events) must never queue the short requests behind them.
export function engineAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 16 });
}
