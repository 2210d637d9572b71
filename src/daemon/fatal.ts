import type { Logger } from '../common/log';

// A bug that escapes every handler leaves the daemon in an unknown state: log
// it, stop etcd, and exit non-zero so the supervisor (systemd's
// Restart=on-failure) starts a clean one. Nothing acknowledged is lost: etcd
// fsyncs before it answers.
export function exitOnFatalErrors(log: Logger, etcdOwner: () => { killNow(): void } | undefined): void {
  const fatal = (kind: string) => (err: unknown): void => {
    try { log.fatal({ err }, `${kind}: exiting`); } catch { process.stderr.write(`shoal: ${kind}: ${String(err)}\n`); }
    try { etcdOwner()?.killNow(); } finally { process.exit(70); }
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled promise rejection'));
}
