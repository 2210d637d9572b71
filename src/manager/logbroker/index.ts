export { startLogBroker, incompleteStream, DEFAULT_CONNECT_GRACE_MS, DEFAULT_MAX_SUBSCRIPTIONS } from './broker';
export type { LogBroker, LogBrokerOptions, LogSelector, LogOptions, BrokerMessage } from './broker';
