// Shared by the benchmark drivers: rounding and writing bench/results/<name>.json.

import fs from 'node:fs';
import path from 'node:path';
import { REPO } from '../harness/paths.js';

export const round1 = (x) => Math.round(x * 10) / 10;
export const round2 = (x) => Math.round(x * 100) / 100;

/** Prints `results` and writes them to bench/results/<name>.json. */
export function writeResults(name, results) {
  console.table(results);
  const file = path.join(REPO, `bench/results/${name}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${path.relative(REPO, file)}`);
}
