#!/usr/bin/env node
// The `sluice` binary (package.json "bin"): commands live in src/cli/, one module per group.
import { main } from './cli/program.js';

await main(process.argv);
