export { Producer, type ProducerOptions } from './producer.js';
export { Worker, type WorkerOptions, type WorkerEvents, type WorkerState, type Handler, type HandlersByType } from './worker.js';
export type { Job, JobControls } from './job-context.js';
export type { BatcherOptions } from './enqueue-batcher.js';
export { connect, DEFAULT_ADDRESS, DEFAULT_CHANNEL_OPTIONS, type ConnectionOptions, type SluiceClients, type TlsOptions } from './connect.js';
export * from './errors.js';
export type * from './types.js';
export type { JobExplanation, ExplainReasonInfo, ExplainReasonName } from './explain.js';
