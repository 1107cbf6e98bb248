#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

// A reader that stops early (`lockstep runs | head`) closes the pipe: what it wanted is printed, nothing failed.
process.stdout.on('error', (error) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(process.exitCode ?? 0);
});

process.exitCode = await main(process.argv);
