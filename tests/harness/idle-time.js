// The harness's clock for giving up: idle machine time, not wall time.
//
// Every wait in the tests (a condition, a CLI command, a process to exit)
// has a limit, so that a hang fails with a name instead of stalling CI. A
// limit in wall time makes the outcome depend on the machine's speed: a
// slow or busy two-core machine spends longer on the same work and runs the
// limit out. So limits are counted in the time the CPUs spent idle (from
// /proc/stat, averaged over the CPUs): while the machine works — encoding a
// file, starting a browser, compiling beside the tests — the clock hardly
// moves; it runs at wall speed only while nothing is being done, which is
// what a real hang looks like (a lost message, a deadlock, a wrong port).
// The test runner's per-test timeout (scripts/test.sh) is the backstop for
// a hang that keeps the CPUs busy.

import { execFile } from 'node:child_process';
import fs from 'node:fs';

/** Linux counts CPU time in USER_HZ ticks, 100 a second on every platform it runs on. */
const MS_PER_TICK = 10;

/**
 * Milliseconds the machine's CPUs have been idle since boot, averaged over
 * the CPUs; the wall clock where /proc/stat cannot be read.
 */
export function idleMs() {
  let stat;
  try {
    stat = fs.readFileSync('/proc/stat', 'utf8');
  } catch {
    return Date.now();
  }
  const lines = stat.split('\n');
  // "cpu  user nice system idle iowait …": the fourth number is idle.
  const idleTicks = Number(lines[0].split(/\s+/)[4]);
  const cpus = lines.filter((l) => /^cpu\d+ /.test(l)).length || 1;
  return (idleTicks * MS_PER_TICK) / cpus;
}

/** A limit of `ms` idle milliseconds, counted from now. */
export class IdleDeadline {
  constructor(ms) {
    this.ms = ms;
    this.start = idleMs();
  }

  get passed() {
    return idleMs() - this.start >= this.ms;
  }
}

/**
 * Resolves as `promise` does, or rejects once the machine has sat idle for
 * `timeoutMs` meanwhile: for a browser event that has no condition to poll
 * (give the call itself `{ timeout: 0 }`).
 */
export async function within(what, promise, { timeoutMs = 15_000 } = {}) {
  const deadline = new IdleDeadline(timeoutMs);
  let watch;
  const gaveUp = new Promise((_, reject) => {
    watch = setInterval(() => {
      if (deadline.passed) reject(new Error(`timed out waiting for ${what}`));
    }, 250);
  });
  try {
    return await Promise.race([promise, gaveUp]);
  } finally {
    clearInterval(watch);
  }
}

/** How long a CLI command may leave the machine idle before it counts as hung. */
export const COMMAND_IDLE_LIMIT_MS = 60_000;

/**
 * Runs a command to completion like `promisify(execFile)` (resolves with
 * `{stdout, stderr}`, rejects with an error carrying them and `code`), with
 * no wall-clock timeout: it is killed only once the machine has been idle
 * for `idleLimitMs` while it ran, and the error then says so.
 */
export function runCommand(command, args, { idleLimitMs = COMMAND_IDLE_LIMIT_MS, ...options } = {}) {
  return new Promise((resolve, reject) => {
    let hung = false;
    const deadline = new IdleDeadline(idleLimitMs);
    const child = execFile(command, args, { maxBuffer: 64 * 1024 * 1024, ...options }, (error, stdout, stderr) => {
      clearInterval(watch);
      if (hung) {
        const e = new Error(`${command} ${args.join(' ')} hung: the machine sat idle for ${idleLimitMs / 1000} s while it ran`);
        reject(Object.assign(e, { stdout, stderr, code: null }));
      } else if (error) {
        reject(Object.assign(error, { stdout, stderr }));
      } else {
        resolve({ stdout, stderr });
      }
    });
    const watch = setInterval(() => {
      if (!deadline.passed) return;
      hung = true;
      child.kill('SIGTERM');
    }, 250);
  });
}
