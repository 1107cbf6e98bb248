/**
 * The end of a benchmark's child process: its work's result as one JSON line on stdout and exit 0,
 * or the error on stderr and exit 1 (the parent reads the last line, or reports what went wrong).
 */
export function answerAsChild(work) {
  work.then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (error) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
