import { createInterface } from 'node:readline/promises';
import { usageError } from './exit.js';

/**
 * Asks on the terminal before an irreversible command. Without a terminal (a script, a pipe)
 * there is nobody to ask: refuse with a usage error (exit 2) that names --yes, so a script never
 * deletes by accident. Resolves true only for "yes" or "y".
 */
export async function confirm(question: string, what: string): Promise<boolean> {
  if (!process.stdin.isTTY) throw usageError(`${what}: pass --yes to confirm (no terminal to ask on)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`${question} Type "yes" to confirm: `)).trim().toLowerCase();
    return answer === 'yes' || answer === 'y';
  } finally {
    rl.close();
  }
}
