#!/usr/bin/env node
// The `sluice` binary (package.json "bin"): commands live in src/cli/, one module per group.
import { main } from './cli/program.js';

// `sluice jobs … | head`: once the reader has gone, stop quietly as Unix tools do, instead of
// dying on an unhandled EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
}

await main(process.argv);
