import type { ViewKey } from '../../protocol/network-view';
import type { ClusterObject, StoredNetworkKeys } from '../../store/objects';
import type { Sealer } from '../ca/ca-key';
import { networkKeyAad } from './schedule';

// The stored key set opened into the form nodes get (protocol ViewKey), for
// the dispatcher. Opened once per stored set (the store replaces the object
// on every change, so the reference is the cache key). A key that does not
// open is left out and reported, and the set is opened again next time (the
// data key may be out of reach only for a moment); a set whose primary does
// not open gives none.
export class NetworkKeyReader {
  private lastSet?: StoredNetworkKeys;
  private lastKeys?: ViewKey[];

  constructor(private readonly sealer: Sealer, private readonly onError: (tag: number, err: Error) => void = () => {}) {}

  keys(cluster: ClusterObject | undefined): ViewKey[] | undefined {
    const set = cluster?.NetworkKeys;
    if (!cluster || !set) return undefined;
    if (set === this.lastSet) return this.lastKeys;
    const out: ViewKey[] = [];
    let failed = false;
    for (const k of set.Keys) {
      try {
        const raw = this.sealer.open(k.SealedKey, networkKeyAad(cluster.ID, k.Tag));
        out.push({ Tag: k.Tag, Key: raw.toString('base64'), Primary: k.Tag === set.PrimaryTag });
        raw.fill(0);
      } catch (err) {
        failed = true;
        this.onError(k.Tag, err as Error);
      }
    }
    const keys = out.some((k) => k.Primary) ? out.sort((a, b) => a.Tag - b.Tag) : undefined;
    if (!failed) { this.lastSet = set; this.lastKeys = keys; }
    return keys;
  }
}
