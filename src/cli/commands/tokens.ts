/** `lockstep token create`, `token list` and `token revoke`: the API's bearer tokens. */
import type { Command } from 'commander';
import { ErrorCode, LockstepError } from '../../core/errors.js';
import { iso } from '../../core/run-views.js';
import { generateToken, hashToken, tokenNameProblem } from '../../core/tokens.js';
import type { CommandDeps } from './command-deps.js';

export function registerTokenCommands(program: Command, deps: CommandDeps): void {
  const { term, open } = deps;

  const tokenCommand = program.command('token').description('API tokens: create, list and revoke them');
  tokenCommand
    .command('create')
    .description('create a token and print it (once: only its hash is kept)')
    .requiredOption('--name <name>', 'a name to tell it by, e.g. airflow')
    .action(async (opts: { name: string }) => {
      const problem = tokenNameProblem(opts.name);
      if (problem) throw new LockstepError(ErrorCode.Validation, problem);
      const { app, close } = await open.app();
      try {
        const token = generateToken();
        await app.store.tokens.create(opts.name, hashToken(token), app.clock.now());
        term.out(token);
        term.err(`Token "${opts.name}" created. It is shown only now: send it as \`Authorization: Bearer <token>\`.`);
      } finally {
        await close();
      }
    });
  tokenCommand
    .command('list')
    .description('list tokens: name, created, last used')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { app, close } = await open.toRead();
      try {
        const tokens = (await app.store.tokens.list()).map((t) => ({ name: t.name, createdAt: iso(t.createdAt), lastUsedAt: iso(t.lastUsedAt) }));
        if (opts.json) term.out(JSON.stringify(tokens, null, 2));
        else if (tokens.length === 0) term.out('No tokens. Create one with `lockstep token create --name NAME`.');
        else for (const t of tokens) term.out(`${t.name}  created ${t.createdAt}  last used ${t.lastUsedAt ?? 'never'}`);
      } finally {
        await close();
      }
    });
  tokenCommand
    .command('revoke <name>')
    .description('revoke a token: requests with it get 401 from now on')
    .action(async (name: string) => {
      const { app, close } = await open.app({ lookingFor: `no token named "${name}"` });
      try {
        if (!(await app.store.tokens.revoke(name))) throw new LockstepError(ErrorCode.NotFound, `no token named "${name}" — \`lockstep token list\` shows them`);
        term.out(`Token "${name}" revoked.`);
      } finally {
        await close();
      }
    });
}
