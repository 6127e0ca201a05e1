// The linter `npm test` runs: neostandard, the style the Fastify org uses, with TypeScript.
import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**', 'bench/results-*.json']
  }),
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited (a background task).
      'no-void': ['error', { allowAsStatement: true }]
    }
  }
]
