// Headers a real dockerd sends on every response; the CLI negotiates its API
// version from Api-Version on /_ping.
export const API_VERSION = '1.41';
export const MIN_API_VERSION = '1.12';

export function daemonHeaders(engineVersion: string): Record<string, string> {
  return {
    'Api-Version': API_VERSION,
    'Docker-Experimental': 'false',
    'Ostype': 'linux',
    'Server': `Docker/${engineVersion} (linux)`,
  };
}
