#!/usr/bin/env node
// The command line as built into one file and its lazily loaded chunks (see rolldown.config.mjs):
// it starts in a third of the time the modules of dist/ take to load one by one.
import { main } from '../dist/bundle/lockstep.js';

// A reader that stops early (`lockstep runs | head`) closes the pipe: what it wanted is printed, nothing failed.
process.stdout.on('error', (error) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(process.exitCode ?? 0);
});

process.exitCode = await main(process.argv);
