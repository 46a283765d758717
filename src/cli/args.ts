/**
 * Flag value parsers shared by the subcommands (commander `argParser`s): a bad value is a usage
 * error naming the flag, exit code 2. Kept apart from the heavy modules so that usage errors
 * come back before any model code loads.
 *
 * @example
 * ```ts
 * new Command("x").option("--epochs <n>", "epochs", posInt);
 * ```
 */
import { InvalidArgumentError } from "commander";

/** A finite number. */
export const num = (v: string): number => {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got '${v}'`);
  return n;
};

/** An integer. */
export const int = (v: string): number => {
  const n = num(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got '${v}'`);
  return n;
};

/** An integer >= 1. */
export const posInt = (v: string): number => {
  const n = num(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got '${v}'`);
  return n;
};

/** A number > 0. */
export const positive = (v: string): number => {
  const n = num(v);
  if (!(n > 0)) throw new InvalidArgumentError(`expected a positive number, got '${v}'`);
  return n;
};
