import { invalid } from '../../common/errors';
import type { ApiRequest } from '../router';
import { decodeGo, type GoType } from '../../common/go/go-json';

// A request body as dockerd's swarm routes read it: `json.NewDecoder(body).
// Decode(&v)`, an empty body being "got EOF" (400), then the Go type's rules
// (go-json.ts). What comes back has the canonical field names only.
export async function decodeBody<T>(req: Pick<ApiRequest, 'json'>, type: GoType): Promise<T> {
  const raw = await req.json<unknown>();
  if (raw === undefined) throw invalid('got EOF while reading request body');
  return decodeGo<T>(raw, type);
}
