// One mailmesh node for tests: its own home, its own Chromium profile with
// the unpacked extension, and the native host registered for that profile
// through a wrapper that names the home. Chromium is started by us with a
// DevTools port (so `cluster.sh` can hand out CDP endpoints) and driven by
// playwright-core over CDP.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { CHROMIUM, EXTENSION_DIR, EXTENSION_ID, checkExtensionBuilt, mailmeshBin } from './paths.js';
import { freePort, stopChild, waitFor } from './util.js';
import { reapStragglers } from './processes.js';

const run = promisify(execFile);

export class MeshNode {
  /**
   * @param {{name: string, dir: string}} options `dir` is this node's own
   *   directory; home and profile are made inside it.
   */
  static async start({ name, dir }) {
    const node = new MeshNode(name, dir);
    await node.#start();
    return node;
  }

  constructor(name, dir) {
    this.name = name;
    this.dir = dir;
    this.home = path.join(dir, 'home');
    this.profile = path.join(dir, 'profile');
  }

  /** Runs the mailmesh CLI for this node's home. */
  mailmesh(...args) {
    return run(mailmeshBin(), ['--home', this.home, ...args], { timeout: 30_000 });
  }

  async #start() {
    checkExtensionBuilt();
    await fs.mkdir(this.profile, { recursive: true });
    await this.mailmesh('install', '--user-data-dir', this.profile);
    this.cdpPort = await freePort();
    this.chromium = spawn(CHROMIUM, [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--no-default-browser-check', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-dev-shm-usage',
      `--user-data-dir=${this.profile}`,
      `--remote-debugging-port=${this.cdpPort}`,
      `--disable-extensions-except=${EXTENSION_DIR}`,
      `--load-extension=${EXTENSION_DIR}`,
      'about:blank',
    ], { stdio: 'ignore', detached: true });
    this.cdpEndpoint = `http://127.0.0.1:${this.cdpPort}`;
    this.browser = await waitFor(`${this.name}'s Chromium DevTools`, () => chromium.connectOverCDP(this.cdpEndpoint), { timeoutMs: 30_000, everyMs: 250 });
    this.context = this.browser.contexts()[0];
    await waitFor(`${this.name}'s extension service worker`, () =>
      this.context.serviceWorkers().find((w) => w.url().startsWith(`chrome-extension://${EXTENSION_ID}/`)));
  }

  extensionUrl(page) {
    return `chrome-extension://${EXTENSION_ID}/${page}`;
  }

  /** Opens an extension page (as a tab) and returns the playwright Page. */
  async openPage(page) {
    const tab = await this.context.newPage();
    await tab.goto(this.extensionUrl(page));
    return tab;
  }

  /** `mailmesh status --json` of this node's engine. */
  async status() {
    const { stdout } = await this.mailmesh('status', '--json');
    return JSON.parse(stdout);
  }

  /** Kills the engine without warning, as a crash would. */
  async killEngine() {
    const { engine_pid: pid } = await this.status();
    process.kill(pid, 'SIGKILL');
    await waitFor('the engine to die', async () => {
      try { process.kill(pid, 0); return false; } catch { return true; }
    });
    return pid;
  }

  async startEngine() {
    await this.mailmesh('run', '--detach');
  }

  /**
   * Closes the browser, stops the engine and makes sure nothing of this
   * node is still running. Returns processes that had to be killed.
   */
  async stop() {
    try { await this.browser?.close(); } catch { /* already gone */ }
    if (this.chromium && this.chromium.exitCode === null) {
      try { process.kill(-this.chromium.pid, 'SIGTERM'); } catch { /* gone */ }
      await stopChild(this.chromium, { graceMs: 5_000 });
    }
    try { await this.mailmesh('stop'); } catch { /* not running */ }
    return reapStragglers(this.dir);
  }
}
