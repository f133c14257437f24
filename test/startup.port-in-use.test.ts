import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startSluice } from '../src/sluice.js';
import { tempDir, testConfig } from './helpers/broker.js';

let blocker: Server | undefined;
let dir: string | undefined;
afterEach(async () => {
  await new Promise((resolve) => (blocker ? blocker.close(resolve) : resolve(undefined)));
  blocker = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('startup', () => {
  it('fails on a gRPC port in use without first logging that it is serving', async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    dir = tempDir();
    const lines: { msg: string; from?: string; to?: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });

    const config = testConfig(join(dir, 'sluice.db'), { grpcAddress: `127.0.0.1:${port}` });
    await expect(startSluice(config, { logger })).rejects.toThrow(/in use|EADDRINUSE|No address added/i);
    const states = lines.filter((l) => l.msg === 'broker state').map((l) => `${l.from}->${l.to}`);
    expect(states).toEqual(['starting->stopped']);
  });
});
