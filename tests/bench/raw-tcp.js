// The wire's own speed between two hosts of a test LAN: a plain TCP copy
// (Node's sockets, 1 MiB writes, no TLS, nothing stored), timed at the
// receiver from the connection until the last byte. The yardstick the
// drive's transfers are held to in `scripts/bench drive`.

import { spawn } from 'node:child_process';
import { once } from 'node:events';

const RECEIVER = `
const net = require('node:net');
const [host, port, total] = process.argv.slice(1);
const server = net.createServer((socket) => {
  const started = process.hrtime.bigint();
  let received = 0;
  socket.on('data', (data) => {
    received += data.length;
    if (received >= Number(total)) {
      console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - started) / 1e6, bytes: received }));
      process.exit(0);
    }
  });
});
server.listen(Number(port), host, () => console.log('ready'));
`;

const SENDER = `
const net = require('node:net');
const crypto = require('node:crypto');
const [host, port, total] = process.argv.slice(1);
const block = crypto.randomBytes(1 << 20);
const socket = net.connect(Number(port), host, () => {
  let sent = 0;
  const pump = () => {
    while (sent < Number(total)) {
      const part = block.subarray(0, Math.min(block.length, Number(total) - sent));
      sent += part.length;
      if (!socket.write(part)) return socket.once('drain', pump);
    }
    socket.end();
  };
  pump();
});
socket.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

/** Lines a child prints, as they come. */
function linesOf(child) {
  const lines = [];
  let waiting = null;
  let rest = '';
  child.stdout.on('data', (data) => {
    const parts = (rest + data).split('\n');
    rest = parts.pop();
    lines.push(...parts);
    waiting?.();
  });
  return async () => {
    while (lines.length === 0) {
      if (child.exitCode !== null) throw new Error(`the TCP copy stopped (exit ${child.exitCode})`);
      await new Promise((resolve) => { waiting = resolve; setTimeout(resolve, 1000); });
    }
    return lines.shift();
  };
}

/**
 * Copies `bytes` from host `from` to host `to` of `lan`; resolves to the
 * throughput in Mbit/s.
 */
export async function rawTcpMbps(lan, from, to, bytes, port = 5201) {
  const [cmd, args] = lan.exec(to, [process.execPath, '-e', RECEIVER, lan.hosts[to].ip, String(port), String(bytes)]);
  const receiver = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const next = linesOf(receiver);
    if (await next() !== 'ready') throw new Error('the TCP receiver did not start');
    const [scmd, sargs] = lan.exec(from, [process.execPath, '-e', SENDER, lan.hosts[to].ip, String(port), String(bytes)]);
    const sender = spawn(scmd, sargs, { stdio: ['ignore', 'ignore', 'inherit'] });
    const { ms } = JSON.parse(await next());
    await once(sender, 'exit');
    return (bytes * 8) / (ms * 1000);
  } finally {
    receiver.kill();
  }
}
