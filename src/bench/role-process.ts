/** The orchestrator's side of a role process: fork, hand it a task, await its answer. */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Tail, track } from './children.js';
import type { ChildMessage, ConsumeResult, ConsumeTask, EnqueueResult, Task } from './protocol.js';

const CHILD_PATH = fileURLToPath(new URL('./child.js', import.meta.url));

export class RoleProcess<R> {
  private readonly stderr = new Tail();
  private readonly stdout = new Tail();
  private readonly resultPromise: Promise<R>;
  private readonly readyPromise: Promise<void>;
  private readonly loadedPromise: Promise<void>;
  private exited = false;
  private progressListener: ((completed: number) => void) | undefined;

  private constructor(
    readonly label: string,
    private readonly child: ChildProcess,
  ) {
    child.stderr!.setEncoding('utf8').on('data', (c: string) => this.stderr.push(c));
    child.stdout!.setEncoding('utf8').on('data', (c: string) => this.stdout.push(c));
    let resolveResult!: (r: R) => void;
    let resolveReady!: () => void;
    let resolveLoaded!: () => void;
    let rejectAll!: (e: Error) => void;
    const rejecters: ((e: Error) => void)[] = [];
    this.resultPromise = new Promise<R>((res, rej) => ((resolveResult = res), rejecters.push(rej)));
    this.readyPromise = new Promise<void>((res, rej) => ((resolveReady = res), rejecters.push(rej)));
    this.loadedPromise = new Promise<void>((res, rej) => ((resolveLoaded = res), rejecters.push(rej)));
    // Whoever awaits one of them sees the failure; the others must not become unhandled.
    for (const p of [this.resultPromise, this.readyPromise, this.loadedPromise]) p.catch(() => {});
    let failed: string | undefined;
    rejectAll = (e) => {
      for (const r of rejecters) r(e);
    };
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'loaded') resolveLoaded();
      else if (m.type === 'ready') resolveReady();
      else if (m.type === 'progress') this.progressListener?.(m.completed);
      else if (m.type === 'result') resolveResult(m.result as R);
      else if (m.type === 'error') failed = m.stack ?? m.message;
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      // Let stderr drain into the tail before describing the failure.
      setImmediate(() =>
        rejectAll(
          new Error(
            `${label} process exited (code ${code}, signal ${signal})${failed ? `: ${failed}` : ' before answering'}` +
              `\n--- ${label} stderr ---\n${this.stderr.toString() || '(empty)'}`,
          ),
        ),
      );
    });
    child.on('error', (e) => rejectAll(new Error(`${label} process: ${e.message}`)));
  }

  /**
   * Forks a role process and waits until it has loaded the client (so start-up is not timed):
   * Sluice's client, or BullMQ for `system` 'bullmq'.
   */
  static async fork<R>(label: string, system: BenchSystem = 'sluice'): Promise<RoleProcess<R>> {
    const child = fork(CHILD_PATH, system === 'bullmq' ? ['bullmq'] : [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: clientNodeArgs() });
    track(child);
    const role = new RoleProcess<R>(label, child);
    await role.loadedPromise;
    return role;
  }

  start(task: Task): this {
    this.child.send({ type: 'start', task });
    return this;
  }

  /** A consume role with `progressMs`: called with its completed count. */
  onProgress(listener: (completed: number) => void): void {
    this.progressListener = listener;
  }

  /** Tells a consume role with `expect` 0 to finish and answer. */
  stop(): void {
    if (!this.exited) this.child.send({ type: 'stop' });
  }

  /** Resolves once a consume role is subscribed. */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  result(): Promise<R> {
    return this.resultPromise;
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

/** Which system a role process drives. */
export type BenchSystem = 'sluice' | 'bullmq';

export type ProducerProcess = RoleProcess<EnqueueResult>;
export type WorkerProcess = RoleProcess<ConsumeResult>;

/** Forks a producer and starts `task` on it. */
export async function startProducer(task: Exclude<Task, ConsumeTask>, system: BenchSystem = 'sluice'): Promise<ProducerProcess> {
  return (await RoleProcess.fork<EnqueueResult>(`${system} producer (${task.role})`, system)).start(task);
}

/** Forks a worker, starts `task` and waits until it is subscribed. */
export async function startWorker(task: ConsumeTask, system: BenchSystem = 'sluice'): Promise<WorkerProcess> {
  const worker = (await RoleProcess.fork<ConsumeResult>(`${system} worker`, system)).start(task);
  await worker.ready();
  return worker;
}

/** Extra node flags for producer and worker processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof". */
function clientNodeArgs(): string[] {
  return (process.env.SLUICE_BENCH_CLIENT_NODE_ARGS ?? '').split(' ').filter(Boolean);
}
