// A small authoritative DNS server for the test LAN, so discovery meets
// real DNS: A, SRV and MX records for made-up domains, over UDP and TCP,
// NXDOMAIN for every other name. Nodes find it through their namespace's
// resolv.conf (`Lan.useDns`).

import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

export class DnsServer {
  /**
   * @param {string} host the address to listen on (port 53)
   * @param {{type: 'A' | 'SRV' | 'MX', name: string, data: any}[]} records
   */
  static async start(host, records) {
    const server = new DnsServer(records);
    await server.#listen(host);
    return server;
  }

  constructor(records) {
    this.records = records;
    /** Every question asked, as "TYPE name", for the tests to check. */
    this.asked = [];
  }

  #answer(query) {
    const questions = query.questions ?? [];
    const answers = [];
    let known = false;
    for (const q of questions) {
      this.asked.push(`${q.type} ${q.name}`);
      const named = this.records.filter((r) => r.name.toLowerCase() === q.name.toLowerCase());
      known ||= named.length > 0;
      answers.push(...named.filter((r) => r.type === q.type).map((r) => ({ ...r, class: 'IN', ttl: 5 })));
    }
    return dnsPacket.encode({
      type: 'response', id: query.id, questions,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      rcode: known ? 'NOERROR' : 'NXDOMAIN',
      answers,
    });
  }

  async #listen(host) {
    this.udp = dgram.createSocket('udp4');
    this.udp.on('message', (message, from) => {
      let reply;
      try { reply = this.#answer(dnsPacket.decode(message)); } catch { return; }
      this.udp.send(reply, from.port, from.address);
    });
    await new Promise((resolve, reject) => {
      this.udp.once('error', reject);
      this.udp.bind(53, host, resolve);
    });
    this.tcp = net.createServer((socket) => {
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const length = buffered.readUInt16BE(0);
          const message = buffered.subarray(2, 2 + length);
          buffered = buffered.subarray(2 + length);
          let reply;
          try { reply = this.#answer(dnsPacket.decode(message)); } catch { socket.destroy(); return; }
          const length2 = Buffer.alloc(2);
          length2.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([length2, reply]));
        }
      });
      socket.on('error', () => {});
    });
    await new Promise((resolve, reject) => {
      this.tcp.once('error', reject);
      this.tcp.listen(53, host, resolve);
    });
  }

  async stop() {
    await new Promise((resolve) => this.udp.close(resolve));
    await new Promise((resolve) => this.tcp.close(resolve));
  }
}
