import { echo, invalidArgument } from './errors.js';

/** Queue and type names: printable, safe in metrics labels and URLs. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export function validateQueueName(name: string, field = 'queue'): string {
  if (name.length === 0) throw invalidArgument(`${field} is required`);
  if (!NAME_PATTERN.test(name)) {
    throw invalidArgument(
      `${field} ${JSON.stringify(echo(name))} is invalid: use 1-128 characters of A-Z a-z 0-9 _ . : - starting with a letter or digit`,
    );
  }
  return name;
}

/** An empty type means "no type". */
export function validateTypeName(name: string, field = 'type'): string {
  return name.length === 0 ? name : validateQueueName(name, field);
}
