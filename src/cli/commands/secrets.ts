/**
 * `lockstep secrets rotate`: every secret the store keeps (connection secrets, alert channel and
 * webhook secrets) encrypted again under a new key, in one transaction of the store.
 */
import type { Command } from 'commander';
import { NEW_SECRET_KEY_ENV, SECRET_KEY_ENV, noStoreYet, rotateStoreSecrets, storeCreated } from '../../app.js';
import type { LockstepConfig } from '../../config.js';
import { NotFoundError } from '../../core/errors.js';
import type { Terminal } from '../output.js';

export interface SecretsCommandDeps {
  term: Terminal;
  /** The resolved configuration of the command's workspace and store. */
  config: () => Promise<LockstepConfig>;
}

export function registerSecretsCommand(program: Command, deps: SecretsCommandDeps): void {
  const secrets = program.command('secrets').description('the key that encrypts the secrets kept in the store');
  secrets
    .command('rotate')
    .description('encrypt every secret kept in the store again under a new key, in one transaction')
    .option(
      '--new-key <key>',
      `the new key: 32 bytes in base64 or hex (default: ${NEW_SECRET_KEY_ENV}; an embedded store keyed by its key file gets a new random key there)`,
    )
    .addHelpText(
      'after',
      `
An embedded store without ${SECRET_KEY_ENV} keeps its key in a file beside it (lockstep.db.key, mode 0600):
rotating writes the new key there and keeps the old one as lockstep.db.key.old until every secret is
encrypted again. A store keyed by ${SECRET_KEY_ENV} (every PostgreSQL store) needs the new key given; then
set ${SECRET_KEY_ENV} to it in every process using the store and restart them. Prefer ${NEW_SECRET_KEY_ENV}
to --new-key: command lines can be seen by other users of the machine.`,
    )
    .action(async (opts: { newKey?: string }) => {
      const config = await deps.config();
      // Opening the store would create it, and an embedded one its key file: a stray key beside no
      // store would then be taken up by the store the next apply creates.
      if (!(await storeCreated(config))) throw new NotFoundError(`no secret to rotate, and no key was written. ${noStoreYet(config)}`);
      const rotation = await rotateStoreSecrets(config, opts.newKey);
      const where = config.store.type === 'sqlite' ? config.store.path : 'the PostgreSQL store';
      if (rotation.finishedEarlier) deps.term.err('An earlier rotation that was cut short was finished first.');
      deps.term.out(`Encrypted ${rotation.secrets} secret(s) of ${where} again under key ${rotation.keyId}; the old key no longer opens them.`);
      if (rotation.keyFile !== null) {
        deps.term.out(
          `The new key is in ${rotation.keyFile} (mode 0600)${rotation.generated ? ', generated here' : ''}. Back it up with the store: without it the secrets cannot be read.`,
        );
        deps.term.out(`Processes using the store read the key file again by themselves; nothing to set.`);
      } else {
        deps.term.out(
          `Set ${SECRET_KEY_ENV} to the new key (the one given with ${opts.newKey ? '--new-key' : NEW_SECRET_KEY_ENV}) in every process using the store, and restart them.`,
        );
      }
    });
}
