/** Facts about the machine and files, for the report header and W5. */
import { statSync } from 'node:fs';
import os from 'node:os';

export interface SystemInfo {
  node: string;
  os: string;
  cpu: string;
  cpus: number;
  memoryGiB: number;
  date: string;
}

export function systemInfo(): SystemInfo {
  const cpus = os.cpus();
  return {
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    date: new Date().toISOString(),
  };
}

/** Size of a file in bytes, 0 when it does not exist. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export const MB = 1024 * 1024;
