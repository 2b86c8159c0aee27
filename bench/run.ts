/**
 * `npm run bench` (and `npm run bench -- --scale`): see bench/main.ts and bench/README.md.
 * Kept apart from main.ts so that importing the bench's modules (the smoke test) runs nothing.
 */
import { runBench } from './main.js'

const report = await runBench(process.argv.slice(2))
process.exitCode = report.errors.length > 0 ? 1 : 0
