export { Producer, type ProducerOptions } from './producer.js';
export {
  Admin,
  type AdminOptions,
  type QueueInfo,
  type QueueDefaults,
  type JobFilter,
  type DeadLetterSelection,
  type WorkerInfo,
} from './admin.js';
export { Worker, type WorkerOptions, type WorkerEvents, type WorkerState, type Handler, type HandlersByType, type WorkerLogger } from './worker.js';
export type { Job, JobControls } from './job-context.js';
export type { BatcherOptions } from './enqueue-batcher.js';
export { connect, DEFAULT_ADDRESS, DEFAULT_CHANNEL_OPTIONS, type ConnectionOptions, type SluiceClients, type TlsOptions } from './connect.js';
export * from './errors.js';
export type * from './types.js';
export {
  Schedules,
  type SchedulesOptions,
  type ScheduleOptions,
  type ScheduledJobOptions,
  type ScheduleInfo,
  type ScheduleRunInfo,
  type ScheduleRef,
  type CatchUpName,
  type OverlapName,
  type Page,
} from './schedules.js';
