// Keeps a cluster running for `scripts/cluster.sh up`, until SIGTERM.
// Writes the cluster's description (plus this process's pid) to the state
// file once everything is up; removes it when everything is down.

import fs from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Cluster } from './cluster.js';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '3' }, state: { type: 'string' } } });
const stateFile = values.state;

let cluster;
try {
  cluster = await Cluster.up({ nodes: Number(values.nodes) });
  const state = { pid: process.pid, ...cluster.describe() };
  await fs.writeFile(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
} catch (e) {
  await fs.writeFile(stateFile, JSON.stringify({ error: String(e.stack ?? e) }), { mode: 0o600 });
  process.exit(1);
}

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  const killed = await cluster.down();
  if (killed.length) console.error('had to kill:', killed);
  await fs.rm(stateFile, { force: true });
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
setInterval(() => {}, 1 << 30);
