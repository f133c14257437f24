import type { JobTypes } from '@sluice/client';

/** The queues of this example and their payloads, shared by producer and worker. */
export interface Jobs {
  email: JobTypes<{ welcome: { to: string; name: string } }>;
  pdf: { reportId: number; pages: number };
}

export const address = process.env.SLUICE_ADDRESS ?? '127.0.0.1:50051';
