// A real mail server for tests: Postfix (SMTP) delivering over LMTP into
// Dovecot (IMAP, maildir, passwd-file users), all on 127.0.0.1 with free
// ports and every file under one temp directory. Runs as root, from
// Debian's packages; each instance is independent of the system's own.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { freePorts, stopChild, tempDir, waitForPort } from './util.js';
import { reapStragglers } from './processes.js';

export const MAIL_DOMAIN = 'mailmesh.test';
/** An address the test Postfix refuses at RCPT time. */
export const REFUSED_RECIPIENT = `refused@${MAIL_DOMAIN}`;

const uidOf = (user) => Number(execFileSync('id', ['-u', user]).toString().trim());
const gidOf = (user) => Number(execFileSync('id', ['-g', user]).toString().trim());

/** Services of Postfix's master we need; chroot off, SMTP on our port. */
function masterCf(smtpPort, smtpsPort) {
  const smtps = smtpsPort ? `${smtpsPort} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt\n` : '';
  return `${smtpPort} inet n - n - - smtpd
${smtps}pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

function mainCf({ root, lmtpPort, authPort, tls, host }) {
  const tlsCf = tls ? `smtpd_tls_cert_file = ${tls.cert}\nsmtpd_tls_key_file = ${tls.key}\nsmtpd_tls_security_level = may\n` : '';
  return `${tlsCf}compatibility_level = 3.6
config_directory = ${root}/postfix/etc
queue_directory = ${root}/postfix/queue
data_directory = ${root}/postfix/data
maillog_file = ${root}/postfix/maillog
maillog_file_prefixes = ${root}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = ${listenList(host)}
inet_protocols = ipv4
myhostname = mx.${MAIL_DOMAIN}
mydomain = ${MAIL_DOMAIN}
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = ${MAIL_DOMAIN}
virtual_transport = lmtp:inet:127.0.0.1:${lmtpPort}
smtpd_relay_restrictions = permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination
# ${REFUSED_RECIPIENT} is refused at RCPT, for tests of what users see then.
smtpd_recipient_restrictions = check_recipient_access inline:{ { ${REFUSED_RECIPIENT} = 550 5.1.1 <${REFUSED_RECIPIENT}>: Recipient address rejected: no such mailbox } }
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:${authPort}
smtpd_banner = $myhostname ESMTP mailmesh-test
message_size_limit = 104857600
biff = no
# Tests should not wait minutes for a retry after a transient failure.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
append_dot_mydomain = no
`;
}

/** Where clients reach the servers: loopback, and `host` if it is another address. */
function listenList(host) {
  return host === '127.0.0.1' ? '127.0.0.1' : `127.0.0.1, ${host}`;
}

function dovecotConf({ root, imapPort, imapsPort, lmtpPort, authPort, tls, host, oauthKey, inboxNamespace }) {
  const ssl = tls ? `ssl = yes\nssl_cert = <${tls.cert}\nssl_key = <${tls.key}` : 'ssl = no';
  // With an OAuth key: XOAUTH2 and OAUTHBEARER too, the access tokens JWTs
  // checked here against the key (Dovecot's oauth2 passdb, local mode).
  const oauth = oauthKey ? `passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${root}/dovecot/oauth2.conf.ext
}
` : '';
  return `protocols = imap lmtp
listen = ${listenList(host)}
base_dir = ${root}/dovecot/run
state_dir = ${root}/dovecot/state
log_path = ${root}/dovecot/dovecot.log
${ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login${oauthKey ? ' xoauth2 oauthbearer' : ''}
mail_location = maildir:~/Maildir
first_valid_uid = 1
${inboxNamespace ? 'namespace inbox {\n  inbox = yes\n  prefix = INBOX.\n  separator = .\n}' : ''}
passdb {
  driver = passwd-file
${oauthKey ? '  mechanisms = plain login\n' : ''}  args = scheme=PLAIN username_format=%u ${root}/dovecot/users
}
${oauth}userdb {
  driver = static
  # With the passdbs kept to their mechanisms, a user lookup (LMTP) skips them.
  args = uid=nobody gid=nogroup home=${root}/mail/%u${oauthKey ? ' allow_all_users=yes' : ''}
}
service imap-login {
  inet_listener imap {
    address = ${listenList(host)}
    port = ${imapPort}
  }
  inet_listener imaps {
    address = ${listenList(host)}
    port = ${imapsPort ?? 0}
  }
}
service auth {
  inet_listener {
    address = 127.0.0.1
    port = ${authPort}
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
}
protocol lmtp {
  postmaster_address = postmaster@${MAIL_DOMAIN}
}
`;
}

export class MailServer {
  /**
   * Starts Postfix and Dovecot; resolves when both accept connections.
   * @param {string} [root] directory to use (made if missing); a fresh temp
   *   directory by default. Its parents must be traversable by the mail
   *   servers' users.
   * @param {{tls?: boolean}} [options] with `tls`, also IMAPS and SMTPS
   *   ports, with a certificate from a CA made for this server
   *   (`caFile`), which nobody else trusts. With `host`, SMTP and IMAP
   *   also listen on that address (for nodes in network namespaces). With
   *   `oauthKey` (bytes), XOAUTH2 and OAUTHBEARER take JWT access tokens
   *   signed with it (HS256), checked by Dovecot's oauth2 passdb. With
   *   `inboxNamespace`, every folder lives under `INBOX.` (as on Courier
   *   and some hosts), so a folder named at the top cannot be made.
   */
  static async start(root, options = {}) {
    // A port found free can be taken by someone else before the servers
    // bind it; then try again with other ports.
    for (let attempt = 1; ; attempt++) {
      const server = new MailServer();
      try {
        await server.#start(root, options);
        return server;
      } catch (e) {
        if (attempt >= 3 || !/Address already in use/.test(e.message)) throw e;
      }
    }
  }

  async #start(dir, { tls = false, host = '127.0.0.1', oauthKey = null, inboxNamespace = false } = {}) {
    this.host = host;
    this.oauthKey = oauthKey;
    this.inboxNamespace = inboxNamespace;
    this.root = dir ?? await tempDir('mailmesh-mail-');
    await fs.mkdir(this.root, { recursive: true });
    if (tls) {
      this.tls = await makeCertificates(path.join(this.root, 'tls'));
      this.caFile = this.tls.ca;
    }
    // Six distinct ports: two the same would put a plain listener where
    // a TLS one belongs.
    [this.smtpPort, this.imapPort, this.lmtpPort, this.authPort, this.imapsPort, this.smtpsPort] = await freePorts(6);
    if (!tls) this.imapsPort = this.smtpsPort = undefined;
    this.users = [];
    const { root } = this;
    for (const dir of ['postfix/etc', 'postfix/queue', 'postfix/data', 'dovecot/run', 'dovecot/state', 'mail']) {
      await fs.mkdir(path.join(root, dir), { recursive: true });
    }
    await fs.chmod(root, 0o755);
    await fs.chown(path.join(root, 'mail'), 65534, 65534);
    await fs.chown(path.join(root, 'postfix/data'), uidOf('postfix'), gidOf('postfix'));
    await fs.writeFile(path.join(root, 'postfix/etc/main.cf'), mainCf(this));
    await fs.writeFile(path.join(root, 'postfix/etc/master.cf'), masterCf(this.smtpPort, this.smtpsPort));
    if (oauthKey) {
      // Dovecot looks the key up as shared/<azp>/<alg>/<kid>: no azp, no kid.
      const keys = path.join(root, 'dovecot/keys/default/HS256');
      await fs.mkdir(keys, { recursive: true, mode: 0o755 });
      await fs.writeFile(path.join(keys, 'default'), oauthKey.toString('base64'), { mode: 0o644 });
      await fs.writeFile(path.join(root, 'dovecot/oauth2.conf.ext'),
        `introspection_mode = local\nlocal_validation_key_dict = fs:posix:prefix=${root}/dovecot/keys/\nusername_attribute = email\n`);
    }
    await fs.writeFile(path.join(root, 'dovecot/dovecot.conf'), dovecotConf(this));
    await fs.writeFile(path.join(root, 'dovecot/users'), '', { mode: 0o600 });
    await fs.chown(path.join(root, 'dovecot/users'), uidOf('dovecot'), gidOf('dovecot'));

    this.dovecot = spawn('dovecot', ['-F', '-c', path.join(root, 'dovecot/dovecot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.postfix = spawn('postfix', ['-c', path.join(root, 'postfix/etc'), 'start-fg'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.stderr = '';
    for (const child of [this.dovecot, this.postfix]) child.stderr.on('data', (d) => { this.stderr += d; });
    try {
      await waitForPort(this.imapPort, 'Dovecot IMAP');
      await waitForPort(this.lmtpPort, 'Dovecot LMTP');
      await waitForPort(this.smtpPort, 'Postfix SMTP');
      if (tls) {
        await waitForPort(this.imapsPort, 'Dovecot IMAPS');
        await waitForPort(this.smtpsPort, 'Postfix SMTPS');
      }
    } catch (e) {
      await this.stop();
      throw new Error(`${e.message}\n${this.stderr}\n${await this.logs()}`);
    }
  }

  /** Adds a mailbox `name@mailmesh.test` with `password`; returns the address. */
  async addUser(name, password) {
    const address = `${name}@${MAIL_DOMAIN}`;
    this.users.push({ address, password });
    await fs.appendFile(path.join(this.root, 'dovecot/users'), `${address}:{PLAIN}${password}\n`);
    return address;
  }

  /** Connection facts for a user, as the tests and cluster.sh print them. */
  describe() {
    return {
      root: this.root,
      host: this.host,
      smtp_port: this.smtpPort,
      imap_port: this.imapPort,
      ...(this.tls ? { smtps_port: this.smtpsPort, imaps_port: this.imapsPort, ca_file: this.caFile } : {}),
      users: this.users,
    };
  }

  /**
   * Every IMAP session of `user` in Dovecot's log, in order: the client's
   * address, the bytes served (`out`, once the session ended), and where
   * in the log it began and ended (`null`: still open).
   */
  async imapSessions(user) {
    const log = await fs.readFile(path.join(this.root, 'dovecot/dovecot.log'), 'utf8').catch(() => '');
    const sessions = new Map();
    log.split('\n').forEach((line, at) => {
      const login = /imap-login: (?:Info: )?Login: user=<([^>]+)>.*rip=([^,]+),.*session=<([^>]+)>/.exec(line);
      if (login && login[1] === user) sessions.set(login[3], { rip: login[2], out: null, begin: at, end: null });
      const ended = /imap\(([^)]+)\)<\d+><([^>]+)>: (?:Info: )?(?:Disconnected|Logged out).* out=(\d+)/.exec(line);
      const session = ended && ended[1] === user && sessions.get(ended[2]);
      if (session) Object.assign(session, { out: Number(ended[3]), end: at });
    });
    return [...sessions.values()];
  }

  /** The servers' own logs, for failure messages. */
  async logs() {
    const read = (f) => fs.readFile(path.join(this.root, f), 'utf8').catch(() => '');
    return `--- postfix ---\n${await read('postfix/maillog')}\n--- dovecot ---\n${await read('dovecot/dovecot.log')}`;
  }

  /**
   * Stops both servers and waits until none of their processes is left.
   * `postfix start-fg` runs master under a shell, so Postfix is stopped the
   * documented way (`postfix stop`), which signals master itself.
   */
  async stop() {
    if (this.postfix) {
      try {
        execFileSync('postfix', ['-c', path.join(this.root, 'postfix/etc'), 'stop'], { stdio: 'ignore' });
      } catch {
        // Not running any more; the checks below still make sure.
      }
    }
    await Promise.all([this.postfix, this.dovecot].filter(Boolean).map((c) => stopChild(c, { graceMs: 10_000 })));
    this.postfix = this.dovecot = null;
    if (this.root) await reapStragglers(this.root);
  }

  /** Stops the servers and removes every file. */
  async destroy() {
    await this.stop();
    if (this.root) await fs.rm(this.root, { recursive: true, force: true });
  }
}

/**
 * A throwaway CA and a certificate it signs for 127.0.0.1, localhost and
 * every name under the test domain (imap., smtp., autoconfig. …).
 */
async function makeCertificates(dir) {
  await fs.mkdir(dir, { recursive: true });
  const f = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'ignore' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=mailmesh test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  await fs.writeFile(f('ext.cnf'), `subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.${MAIL_DOMAIN}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf'));
  // Dovecot and Postfix read the key as root before dropping privileges.
  await fs.chmod(f('server.key'), 0o600);
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}
