// A small OAuth 2 issuer for the tests: the authorize endpoint (which
// signs the owner in at once, as if they had typed their password and
// clicked Allow) and the token endpoint (authorization code with PKCE
// S256, refresh), issuing JWT access tokens (HS256) that Dovecot's oauth2
// passdb checks locally. Refresh tokens can be revoked.

import crypto from 'node:crypto';
import https from 'node:https';
import fs from 'node:fs/promises';

const b64url = (buffer) => Buffer.from(buffer).toString('base64url');

export class TokenIssuer {
  /**
   * @param {{host: string, tls: {cert: string, key: string}, hmacKey: Buffer, clientId: string, lifetimeS: number}} options
   */
  static async start({ host, tls, hmacKey, clientId, lifetimeS }) {
    const issuer = new TokenIssuer(hmacKey, clientId, lifetimeS);
    const options = { cert: await fs.readFile(tls.cert), key: await fs.readFile(tls.key) };
    issuer.server = https.createServer(options, (req, res) => issuer.#serve(req, res).catch((e) => {
      res.writeHead(500);
      res.end(String(e));
    }));
    await new Promise((resolve, reject) => {
      issuer.server.once('error', reject);
      issuer.server.listen(0, host, resolve);
    });
    issuer.port = issuer.server.address().port;
    return issuer;
  }

  constructor(hmacKey, clientId, lifetimeS) {
    this.hmacKey = hmacKey;
    this.clientId = clientId;
    this.lifetimeS = lifetimeS;
    /** code → {challenge, redirect, email} */
    this.codes = new Map();
    /** refresh token → email, while not revoked */
    this.refreshTokens = new Map();
    /** What was granted, in order: 'authorization_code' or 'refresh_token'. */
    this.grants = [];
  }

  /** A JWT access token for `email` (what Dovecot validates). */
  accessToken(email) {
    const now = Math.floor(Date.now() / 1000);
    const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64url(JSON.stringify({ sub: email, email, iat: now, nbf: now, exp: now + this.lifetimeS }));
    const signature = b64url(crypto.createHmac('sha256', this.hmacKey).update(`${head}.${body}`).digest());
    return `${head}.${body}.${signature}`;
  }

  /** Every refresh token stops working (the owner revoked mailmesh's access). */
  revokeAll() {
    this.refreshTokens.clear();
  }

  async #serve(req, res) {
    const url = new URL(req.url, 'https://issuer');
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && url.pathname === '/authorize') {
      const q = url.searchParams;
      const redirect = q.get('redirect_uri') ?? '';
      if (q.get('client_id') !== this.clientId || !/^http:\/\/127\.0\.0\.1:\d+\//.test(redirect)
        || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge') || q.get('response_type') !== 'code') {
        res.writeHead(400);
        res.end('bad authorization request');
        return;
      }
      const code = b64url(crypto.randomBytes(16));
      this.codes.set(code, { challenge: q.get('code_challenge'), redirect, email: q.get('login_hint') });
      const back = new URL(redirect);
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state'));
      res.writeHead(302, { location: back.toString() });
      res.end();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      let text = '';
      for await (const chunk of req) text += chunk;
      const form = new URLSearchParams(text);
      const basic = req.headers.authorization?.startsWith('Basic ')
        ? Buffer.from(req.headers.authorization.slice(6), 'base64').toString().split(':')[0] : null;
      if ((form.get('client_id') ?? decodeURIComponent(basic ?? '')) !== this.clientId) return json(401, { error: 'invalid_client' });
      const grant = form.get('grant_type');
      let email;
      if (grant === 'authorization_code') {
        const issued = this.codes.get(form.get('code'));
        this.codes.delete(form.get('code'));
        const verifier = form.get('code_verifier') ?? '';
        if (!issued || issued.redirect !== form.get('redirect_uri')
          || b64url(crypto.createHash('sha256').update(verifier).digest()) !== issued.challenge) {
          return json(400, { error: 'invalid_grant' });
        }
        email = issued.email;
      } else if (grant === 'refresh_token') {
        email = this.refreshTokens.get(form.get('refresh_token'));
        if (!email) return json(400, { error: 'invalid_grant', error_description: 'the refresh token was revoked' });
        this.refreshTokens.delete(form.get('refresh_token'));
      } else {
        return json(400, { error: 'unsupported_grant_type' });
      }
      this.grants.push(grant);
      const refresh = b64url(crypto.randomBytes(24));
      this.refreshTokens.set(refresh, email);
      return json(200, { access_token: this.accessToken(email), token_type: 'Bearer', expires_in: this.lifetimeS, refresh_token: refresh });
    }
    res.writeHead(404);
    res.end('not here');
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
