import type { Router } from '../router';

// GET/HEAD /_ping, as dockerd answers it: "OK" (HEAD: empty, Content-Length 0),
// no caching. The CLI negotiates its API version from the Api-Version header
// that server.ts puts on every answer. No Swarm header: dockerd 20.10 does not
// send one; no Builder-Version either: 20.10 sends it only when the buildkit
// feature is configured.
export function registerPingRoutes(router: Router): void {
  router.on(['GET', 'HEAD'], '/_ping', async (req, res) => {
    res.setHeader('Cache-Control', 'no-cache, no-store, must-revalidate');
    res.setHeader('Pragma', 'no-cache');
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': '0' });
      res.end();
      return undefined;
    }
    return { status: 200, body: 'OK' };
  });
}
