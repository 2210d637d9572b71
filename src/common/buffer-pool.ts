// Node hands out Buffers under half its pool size as slices of one shared
// slab (8 KiB by default), and a slice that lives on keeps its whole slab. On a
// leader holding 5,000 node sessions, 5,084 slabs (40 MB) were kept alive by
// messages of a few hundred bytes: each stream's first request, which grpc-js
// keeps for the stream's life, and each TLS socket's copy of its ALPN list
// (a heap snapshot, docs/SCALE.md). With 1 KiB slabs a kept slice holds at
// most 1 KiB; larger Buffers get their own memory, as they do anyway.
export const BUFFER_POOL_BYTES = 1024;

export function useSmallBufferPool(): void {
  Buffer.poolSize = BUFFER_POOL_BYTES;
}
