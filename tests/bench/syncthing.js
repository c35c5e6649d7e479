// Syncthing, the tool an owner would otherwise use to keep a file on two
// of their own devices, run between two hosts of a test LAN as `scripts/bench
// drive`'s second yardstick: one folder shared by the two devices (static
// addresses, no discovery, relays or NAT), a file linked into the sender's
// folder and a scan asked for, timed until the whole file has its name in
// the receiver's folder (Syncthing writes a temp file and renames it once
// every block is verified).

import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '../harness/util.js';

const GUI_PORT = 8384;
const SYNC_PORT = 22000;

/** Whether Syncthing is installed; otherwise why not, for the results. */
export function syncthingMissing() {
  try {
    execFileSync('syncthing', ['--version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'syncthing is not installed (Debian: apt-get install syncthing)';
  }
}

function configXml(devices, me, folder, apiKey) {
  const device = (d) => `  <device id="${d.id}" name="${d.name}" compression="metadata" introducer="false">
    <address>tcp://${d.ip}:${SYNC_PORT}</address>
  </device>`;
  return `<configuration version="36">
  <folder id="bench" label="bench" path="${folder}" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="false">
${devices.map((d) => `    <device id="${d.id}"></device>`).join('\n')}
  </folder>
${devices.map(device).join('\n')}
  <gui enabled="true" tls="false"><address>${me.ip}:${GUI_PORT}</address><apikey>${apiKey}</apikey></gui>
  <options>
    <listenAddress>tcp://${me.ip}:${SYNC_PORT}</listenAddress>
    <globalAnnounceEnabled>false</globalAnnounceEnabled>
    <localAnnounceEnabled>false</localAnnounceEnabled>
    <relaysEnabled>false</relaysEnabled>
    <natEnabled>false</natEnabled>
    <startBrowser>false</startBrowser>
    <urAccepted>-1</urAccepted>
    <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
    <crashReportingEnabled>false</crashReportingEnabled>
    <reconnectionIntervalS>1</reconnectionIntervalS>
  </options>
</configuration>
`;
}

export class SyncthingPair {
  /** Two Syncthing devices on hosts `from` and `to` of `lan`, under `dir`. */
  static async start(lan, from, to, dir) {
    const pair = new SyncthingPair();
    pair.apiKey = crypto.randomBytes(16).toString('hex');
    pair.devices = [from, to].map((host, i) => {
      const home = path.join(dir, `syncthing-${i}`);
      execFileSync('syncthing', ['generate', `--home=${home}`, '--no-default-folder'], { stdio: 'ignore' });
      const id = execFileSync('syncthing', ['serve', `--home=${home}`, '--device-id'], { encoding: 'utf8' }).trim();
      const folder = path.join(dir, `syncthing-${i}-folder`);
      fs.mkdirSync(path.join(folder, '.stfolder'), { recursive: true });
      return { host, home, folder, id, name: `device${i}`, ip: lan.hosts[host].ip };
    });
    pair.processes = [];
    try {
      for (const device of pair.devices) {
        fs.writeFileSync(path.join(device.home, 'config.xml'), configXml(pair.devices, device, device.folder, pair.apiKey));
        const [cmd, args] = lan.exec(device.host, ['syncthing', 'serve', `--home=${device.home}`, '--no-browser',
          '--no-restart', '--no-upgrade', `--logfile=${device.home}/syncthing.log`]);
        pair.processes.push(spawn(cmd, args, { stdio: 'ignore', env: { ...process.env, STNODEFAULTFOLDER: '1' } }));
      }
      const [sender, receiver] = pair.devices;
      await waitFor('the two Syncthing devices connected', async () => {
        const connections = await pair.#api(sender, 'GET', '/rest/system/connections').catch(() => null);
        return connections?.connections?.[receiver.id]?.connected;
      }, { timeoutMs: 60_000, everyMs: 250 });
    } catch (e) {
      pair.stop();
      throw e;
    }
    return pair;
  }

  async #api(device, method, route) {
    const response = await fetch(`http://${device.ip}:${GUI_PORT}${route}`, { method, headers: { 'X-API-Key': this.apiKey } });
    if (!response.ok) throw new Error(`syncthing ${route}: ${response.status}`);
    return response.json().catch(() => ({}));
  }

  /**
   * Puts `file` in the sender's folder (a hard link: nothing is copied)
   * and asks for a scan; resolves to the ms until the receiver has it whole.
   */
  async transfer(file) {
    const [sender, receiver] = this.devices;
    const name = path.basename(file);
    const size = fs.statSync(file).size;
    fs.linkSync(file, path.join(sender.folder, name));
    const started = Date.now();
    await this.#api(sender, 'POST', '/rest/db/scan?folder=bench');
    const arrived = path.join(receiver.folder, name);
    return waitFor('the file in the receiving Syncthing folder', () =>
      fs.existsSync(arrived) && fs.statSync(arrived).size === size && Date.now() - started,
    { timeoutMs: 1_800_000, everyMs: 100 });
  }

  stop() {
    for (const child of this.processes) child.kill();
  }

  /** Deletes the synced copies (a stopped pair's folders and databases). */
  removeFiles() {
    for (const device of this.devices) {
      for (const dir of [device.folder, device.home]) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
