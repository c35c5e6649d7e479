// Runs inside a node's network namespace: forwards TCP from the namespace's
// LAN address to Chromium's DevTools port on the namespace's loopback, so
// the test (in the root namespace) can drive that browser.
//
// usage: node cdp-forward.js LISTEN_HOST LISTEN_PORT TARGET_PORT

import net from 'node:net';

const [host, port, target] = process.argv.slice(2);
net.createServer((client) => {
  const upstream = net.connect(Number(target), '127.0.0.1');
  client.pipe(upstream).pipe(client);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end);
  upstream.on('error', end);
}).listen(Number(port), host, () => process.stdout.write('ready\n'));
