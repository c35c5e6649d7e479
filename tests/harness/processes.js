// Finds processes that belong to a test run, by a directory they mention in
// their command line or work in. Used to prove that stopping the harness
// leaves nothing behind.

import fs from 'node:fs';
import { IdleDeadline } from './idle-time.js';

/** Pids of live (non-zombie) processes whose cmdline or cwd contains `dir`. */
export function processesUsing(dir) {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      let cwd = '';
      try { cwd = fs.readlinkSync(`/proc/${entry}/cwd`); } catch { /* gone or not ours */ }
      if (cmdline.includes(dir) || cwd.startsWith(dir)) found.push({ pid: Number(entry), cmdline: cmdline.trim(), cwd });
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/**
 * Waits for every process using `dir` to end (up to `timeoutMs` of idle
 * machine time), then kills what is left. Returns the processes that had
 * to be killed.
 */
export async function reapStragglers(dir, timeoutMs = 10_000) {
  const deadline = new IdleDeadline(timeoutMs);
  while (!deadline.passed) {
    if (processesUsing(dir).length === 0) return [];
    await new Promise((r) => setTimeout(r, 100));
  }
  const left = processesUsing(dir);
  for (const p of left) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  return left;
}
