// One mailmesh node for tests: its own home, its own Chromium profile with
// the unpacked extension, and the native host registered for that profile
// through a wrapper that names the home. Chromium is started by us with a
// DevTools port (so `cluster.sh` can hand out CDP endpoints) and driven by
// playwright-core over CDP. On a test LAN (lan.js) the node runs inside its
// own network namespace, browser and engine alike, and a small forwarder
// in the namespace carries the DevTools connection.

import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, EXTENSION_DIR, EXTENSION_ID, checkExtensionBuilt, mailmeshBin } from './paths.js';
import { freePort, stopChild, waitFor } from './util.js';
import { reapStragglers } from './processes.js';
import { runCommand } from './idle-time.js';

const FORWARDER = fileURLToPath(new URL('./cdp-forward.js', import.meta.url));
/** Ports inside a node's own namespace, where nothing else listens. */
const NS_CDP_PORT = 9222;
const NS_FORWARD_PORT = 9223;

export class MeshNode {
  /**
   * @param {{name: string, dir: string, lan?: import('./lan.js').Lan, host?: number, args?: string[]}} options
   *   `dir` is this node's own directory; home and profile are made inside
   *   it. With `lan`, the node runs on LAN host number `host`.
   */
  static async start({ name, dir, lan, host, args = [] }) {
    const node = new MeshNode(name, dir, lan, host);
    await node.#start(args);
    return node;
  }

  /** A node whose browser is not started yet (see `startBrowser`). */
  static prepare({ name, dir, lan, host }) {
    return new MeshNode(name, dir, lan, host);
  }

  constructor(name, dir, lan = null, host = 0) {
    this.name = name;
    this.dir = dir;
    this.lan = lan;
    this.host = host;
    this.home = path.join(dir, 'home');
    this.profile = path.join(dir, 'profile');
    /** Where Chrome saves downloads when no DevTools client decides. */
    this.downloads = path.join(dir, 'downloads');
  }

  /** Runs the mailmesh CLI for this node's home (as long as the machine is busy with it). */
  mailmesh(...args) {
    return runCommand(mailmeshBin(), ['--home', this.home, ...args]);
  }

  /** The command (and its arguments) that runs `argv` where this node lives. */
  #where(argv) {
    return this.lan ? this.lan.exec(this.host, argv) : [argv[0], argv.slice(1)];
  }

  /** This node's address on the test LAN. */
  get ip() {
    return this.lan?.hosts[this.host].ip ?? '127.0.0.1';
  }

  startBrowser(args = []) {
    return this.#start(args);
  }

  async #start(extraArgs) {
    checkExtensionBuilt();
    await fs.mkdir(path.join(this.profile, 'Default'), { recursive: true });
    await fs.mkdir(this.downloads, { recursive: true });
    const preferences = path.join(this.profile, 'Default/Preferences');
    if (!existsSync(preferences)) {
      await fs.writeFile(preferences, JSON.stringify({
        download: { default_directory: this.downloads, prompt_for_download: false },
      }));
    }
    await this.mailmesh('install', '--user-data-dir', this.profile);
    this.cdpPort = this.lan ? NS_CDP_PORT : await freePort();
    const [command, args] = this.#where([CHROMIUM,
      // Windows only when asked (scripts/demo.sh with a display).
      ...(process.env.MAILMESH_SHOW_BROWSERS ? [] : ['--headless=new']), '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--no-default-browser-check', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-dev-shm-usage',
      `--user-data-dir=${this.profile}`,
      `--remote-debugging-port=${this.cdpPort}`,
      `--disable-extensions-except=${EXTENSION_DIR}`,
      `--load-extension=${EXTENSION_DIR}`,
      ...extraArgs,
      'about:blank',
    ]);
    this.chromium = spawn(command, args, { stdio: 'ignore', detached: true });
    if (this.lan) {
      const [fwd, fwdArgs] = this.#where([process.execPath, FORWARDER, this.ip, String(NS_FORWARD_PORT), String(this.cdpPort)]);
      this.forwarder = spawn(fwd, fwdArgs, { stdio: 'ignore', detached: true });
      this.cdpEndpoint = `http://${this.ip}:${NS_FORWARD_PORT}`;
    } else {
      this.cdpEndpoint = `http://127.0.0.1:${this.cdpPort}`;
    }
    await this.attachDevTools();
    await waitFor(`${this.name}'s extension service worker`, () =>
      this.context.serviceWorkers().find((w) => w.url().startsWith(`chrome-extension://${EXTENSION_ID}/`)));
  }

  /**
   * Connects playwright to the browser. A connected DevTools client records
   * every WebSocket frame and response, which costs the browser process
   * memory and time; benches detach while they measure.
   */
  async attachDevTools() {
    this.browser = await waitFor(`${this.name}'s Chromium DevTools`, async () => chromium.connectOverCDP(await this.#browserWs()), { timeoutMs: 30_000, everyMs: 250 });
    this.context = this.browser.contexts()[0];
  }

  /** Disconnects playwright; the browser and its pages go on. */
  async detachDevTools() {
    await this.browser.close();
    this.browser = null;
    this.context = null;
  }

  /**
   * The browser's DevTools WebSocket, reached through this node's endpoint
   * (Chromium names its own loopback address, which is not ours on a LAN).
   */
  async #browserWs() {
    const version = await (await fetch(`${this.cdpEndpoint}/json/version`)).json();
    const ws = new URL(version.webSocketDebuggerUrl);
    ws.host = new URL(this.cdpEndpoint).host;
    return ws.toString();
  }

  /** The extension's service worker as it runs now (Chrome may restart it). */
  serviceWorker() {
    return waitFor(`${this.name}'s extension service worker`, () =>
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
    const [command, args] = this.#where([mailmeshBin(), '--home', this.home, 'run', '--detach']);
    await runCommand(command, args);
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
    if (this.forwarder && this.forwarder.exitCode === null) await stopChild(this.forwarder, { graceMs: 1_000 });
    try { await this.mailmesh('stop'); } catch { /* not running */ }
    return reapStragglers(this.dir);
  }
}
