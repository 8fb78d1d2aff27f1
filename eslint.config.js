// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

/**
 * The workflow sandbox boundary is a folder boundary: code under workflows/ and src/shared/ runs inside
 * Temporal's deterministic V8 sandbox, so it may import only @temporalio/workflow, zod, each other, and
 * activity *types*. Everything else (Node built-ins, pino, the SDK, config/, workers/) is refused here
 * and again by the bundle test.
 */
const sandboxBoundary = {
  files: ['workflows/**/*.ts', 'src/shared/**/*.ts'],
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: '^(?!(@temporalio/workflow|zod)$)(?!\\.{1,2}/)',
            message:
              'workflows/ and src/shared/ run in the deterministic sandbox: import only @temporalio/workflow, zod, src/shared/ and activity types.',
          },
          {
            regex: '(^|/)(config|workers|bin|scripts|test)(/|$)|(^|/)src/(?!shared(/|$))',
            message:
              'workflows/ and src/shared/ must not import I/O code (config/, workers/, src/ outside shared/).',
          },
          {
            regex: '(^|/)activities(/|$)',
            allowTypeImports: true,
            message: 'workflows/ may import activity *types* only (use `import type`).',
          },
        ],
      },
    ],
  },
};

export default tseslint.config(
  {
    ignores: [
      'node_modules',
      '.tools',
      '.orchestrator',
      'outputs',
      'dist',
      'coverage',
      'eslint.config.js',
      'bin/**',
      'scripts/*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-floating-promises': 'error',
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
  sandboxBoundary,
  prettier,
);
