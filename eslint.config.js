// Lint: typescript-eslint's recommended type-aware rules, plus the layering rule of
// ../shared/DESIGN.md: a layer imports only the layers below it
// (io -> cache -> ondisk -> fs -> fuse -> cli); src/errors.ts is below everything.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layers = ['io', 'cache', 'ondisk', 'fs', 'fuse', 'cli'];
const layerRules = layers.map((layer, index) => {
  const above = layers.slice(index + 1);
  const forbidden = layer === 'ondisk' ? [...above, 'io', 'cache'] : above;
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: forbidden.map((name) => ({
            group: [`**/${name}/*`, `../${name}/*`],
            message: `src/${layer} must not import src/${name} (layers import only downward; see DESIGN.md)`,
          })),
        },
      ],
    },
  };
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**', 'eslint.config.js', '.demo/**', '.bench/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
    },
  },
  {
    // node:test's describe/it return promises the runner itself tracks.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
    },
  },
  ...layerRules,
);
