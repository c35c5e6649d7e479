// An IMAP proxy between an engine and Dovecot that can play a provider
// limiting the account: while `throttling`, every fetch of a whole message
// (`UID FETCH … BODY.PEEK[]`) is answered `NO [THROTTLED]` as Outlook
// does, and never reaches Dovecot; everything else passes through.

import net from 'node:net';

const WHOLE_MESSAGE_FETCH = /^(\S+) UID FETCH \S+ \(?.*BODY\.PEEK\[\]/i;

export class ImapProxy {
  /** Listens on a free port of 127.0.0.1 (and `host`) and forwards to `target` on 127.0.0.1. */
  static async start(target, host = '127.0.0.1') {
    const proxy = new ImapProxy(target);
    await new Promise((resolve) => proxy.server.listen(0, host, resolve));
    proxy.port = proxy.server.address().port;
    return proxy;
  }

  constructor(target) {
    this.throttling = false;
    /** Whole-message fetches refused so far. */
    this.refused = 0;
    this.sockets = new Set();
    this.server = net.createServer((client) => {
      const server = net.connect(target, '127.0.0.1');
      for (const s of [client, server]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      server.pipe(client);
      server.on('close', () => client.destroy());
      client.on('close', () => server.destroy());
      // Client lines are looked at one by one; a literal's bytes pass as
      // they are (none of them starts a fetch command).
      let pending = Buffer.alloc(0);
      client.on('data', (data) => {
        pending = Buffer.concat([pending, data]);
        for (let end = pending.indexOf('\r\n'); end >= 0; end = pending.indexOf('\r\n')) {
          const line = pending.subarray(0, end + 2);
          pending = pending.subarray(end + 2);
          const fetch = WHOLE_MESSAGE_FETCH.exec(line.toString('latin1'));
          if (this.throttling && fetch) {
            this.refused++;
            client.write(`${fetch[1]} NO [THROTTLED] Request is throttled. Suggested Backoff Time: 3000 milliseconds\r\n`);
          } else {
            server.write(line);
          }
        }
      });
    });
  }

  async stop() {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
