// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import path from 'node:path';

const ROOT = import.meta.dirname;
/** Folders the sandbox may reach by a relative path (activities/ only for types: the rule below). */
const SANDBOX_DIRS = ['workflows', 'src/shared', 'activities'];

/**
 * Relative imports are resolved against the importing file, so a file in src/shared/ cannot reach
 * `'../logger'` or `'../runs'` (Node-side neighbours) by a path that a folder pattern would not see.
 */
const sandboxPlugin = {
  rules: {
    'relative-imports': {
      meta: {
        type: 'problem',
        schema: [],
        messages: {
          outside:
            '"{{source}}" resolves to {{target}}, outside the deterministic sandbox: workflows/ and src/shared/ may import only each other and activity types.',
        },
      },
      /** @param {import('eslint').Rule.RuleContext} context */
      create(context) {
        /** @param {import('estree').Node} node @param {unknown} source */
        const check = (node, source) => {
          if (typeof source !== 'string' || !source.startsWith('.')) return;
          const target = path.relative(ROOT, path.resolve(path.dirname(context.filename), source));
          const inside = SANDBOX_DIRS.some((d) => target === d || target.startsWith(`${d}/`));
          if (!inside)
            context.report({ node, messageId: 'outside', data: { source, target: target || '.' } });
        };
        return {
          ImportDeclaration: (node) => check(node, node.source.value),
          ExportAllDeclaration: (node) => check(node, node.source.value),
          ExportNamedDeclaration: (node) => node.source && check(node, node.source.value),
          ImportExpression: (node) => node.source.type === 'Literal' && check(node, node.source.value),
        };
      },
    },
  },
};

/**
 * The workflow sandbox boundary is a folder boundary: code under workflows/ and src/shared/ runs inside
 * Temporal's deterministic V8 sandbox, so it may import only @temporalio/workflow, zod, each other, and
 * activity *types*. Everything else (Node built-ins, pino, the SDK, config/, workers/) is refused here
 * and again by the bundle test.
 */
const sandboxBoundary = {
  files: ['workflows/**/*.ts', 'src/shared/**/*.ts'],
  plugins: { sandbox: sandboxPlugin },
  rules: {
    'sandbox/relative-imports': 'error',
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

/**
 * workflows/otel-interceptors.ts is bundled only into the traced workflow bundle, beside Temporal's
 * OpenTelemetry workflow interceptors, and may import `@opentelemetry/api` (sandbox-safe: no I/O).
 */
const tracingSandbox = {
  files: ['workflows/otel-interceptors.ts'],
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: '^(?!(@temporalio/workflow|zod|@opentelemetry/api)$)(?!\\.{1,2}/)',
            message:
              'workflows/otel-interceptors.ts may import only @temporalio/workflow, zod, @opentelemetry/api and workflows/.',
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
  tracingSandbox,
  prettier,
);
