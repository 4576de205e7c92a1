#!/usr/bin/env node
// Entry point of the `extrema` binary: errors become one clear line and exit code 1.
import { buildProgram } from './program';

buildProgram().parseAsync(process.argv).catch((e: unknown) => {
  const err = e as Error;
  process.stderr.write(`extrema: ${err?.message ?? String(e)}\n`);
  if (process.env.EXTREMA_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
  process.exitCode = 1;
});
