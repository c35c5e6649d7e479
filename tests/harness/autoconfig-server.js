// Serves Thunderbird autoconfig documents on the test LAN, over HTTPS
// (port 443, a certificate from the mail server's test CA) and plain HTTP
// (port 80), each document under the host name and path a client asks.

import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs/promises';

/**
 * An autoconfig document for these servers, login name the address; with
 * `oauth` ({issuer, scope, authURL, tokenURL}), they take OAuth 2 too.
 */
export function autoconfigXml({ name, imap, smtp, oauth }) {
  const auth = `<authentication>password-cleartext</authentication>${oauth ? '<authentication>OAuth2</authentication>' : ''}`;
  const server = (tag, type, s) => `<${tag} type="${type}"><hostname>${s.host}</hostname><port>${s.port}</port>` +
    `<socketType>${s.socketType}</socketType><username>%EMAILADDRESS%</username>${auth}</${tag}>`;
  const signIn = oauth ? `<oAuth2><issuer>${oauth.issuer}</issuer><scope>${oauth.scope}</scope>` +
    `<authURL>${oauth.authURL}</authURL><tokenURL>${oauth.tokenURL}</tokenURL></oAuth2>` : '';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<clientConfig version="1.1"><emailProvider id="${name}">` +
    `<displayName>${name}</displayName>${server('incomingServer', 'imap', imap)}${server('outgoingServer', 'smtp', smtp)}` +
    `</emailProvider>${signIn}</clientConfig>\n`;
}

export class AutoconfigServer {
  /**
   * @param {string} host address to listen on
   * @param {{cert: string, key: string}} tls files for the HTTPS side
   * @param {{https?: Record<string, string>, http?: Record<string, string>}} documents
   *   per scheme, "host/path" → XML
   */
  static async start(host, tls, documents) {
    const server = new AutoconfigServer(documents);
    const options = { cert: await fs.readFile(tls.cert), key: await fs.readFile(tls.key) };
    server.servers = [
      https.createServer(options, (req, res) => server.#serve('https', req, res)),
      http.createServer((req, res) => server.#serve('http', req, res)),
    ];
    await Promise.all(server.servers.map((s, i) => new Promise((resolve, reject) => {
      s.once('error', reject);
      s.listen(i === 0 ? 443 : 80, host, resolve);
    })));
    return server;
  }

  constructor(documents) {
    this.documents = documents;
    /** Every request, as "scheme://host/path", for the tests to check. */
    this.requests = [];
  }

  #serve(scheme, req, res) {
    const place = `${req.headers.host}${req.url.split('?')[0]}`;
    this.requests.push(`${scheme}://${place}`);
    const body = this.documents[scheme]?.[place];
    res.writeHead(body ? 200 : 404, { 'content-type': 'text/xml' });
    res.end(body ?? 'not here');
  }

  async stop() {
    await Promise.all(this.servers.map((s) => new Promise((resolve) => { s.closeAllConnections?.(); s.close(resolve); })));
  }
}
