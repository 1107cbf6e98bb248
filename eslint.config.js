import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

/** Folders of src/ and what each may import of ours (STYLE.md: the folders are the architecture). */
const layers = {
  core: [],
  engine: ['core'],
  store: ['core'],
  connectors: ['core'],
  workspace: ['core'],
  api: ['core', 'engine', 'workspace'],
  cli: ['core', 'engine', 'workspace', 'app', 'config'],
};
const all = ['core', 'engine', 'store', 'connectors', 'workspace', 'cli', 'api'];

const boundaryRules = Object.entries(layers).map(([layer, allowed]) => ({
  files: [`src/${layer}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...all
            .filter((other) => other !== layer && !allowed.includes(other))
            .map((other) => ({
              group: [`**/${other}/**`, `**/${other}`],
              message: `src/${layer} may not import src/${other}; only app.ts wires concrete pieces (see STYLE.md).`,
            })),
          ...(allowed.includes('app') ? [] : [{ group: ['**/app.js'], message: 'only the CLI may import the composition root.' }]),
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'web/dist/**', 'coverage/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  ...boundaryRules,
);
