/** Facts about the machine and files, for the report header and W5. */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

export interface SystemInfo {
  node: string;
  os: string;
  cpu: string;
  cpus: number;
  memoryGiB: number;
  date: string;
  /** 1-minute load average when the run started (other work on a shared machine skews results). */
  loadAverageAtStart: number;
  /** Commit of the code under test, "+dirty" with uncommitted changes; "unknown" outside git. */
  commit: string;
}

function gitCommit(): string {
  const cwd = fileURLToPath(new URL('.', import.meta.url));
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
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
    commit: gitCommit(),
    loadAverageAtStart: Math.round(os.loadavg()[0]! * 100) / 100,
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
