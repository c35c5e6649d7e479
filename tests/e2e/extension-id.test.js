// The extension id is derived from the manifest's public key; the host's
// allowed_origins and the README depend on it staying what they say.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { EXTENSION_DIR, EXTENSION_ID, REPO } from '../harness/paths.js';

test('the manifest key yields the extension id the host and README name', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(EXTENSION_DIR, 'manifest.json'), 'utf8'));
  const digest = crypto.createHash('sha256').update(Buffer.from(manifest.key, 'base64')).digest('hex');
  const id = [...digest.slice(0, 32)].map((c) => String.fromCharCode(97 + parseInt(c, 16))).join('');
  assert.equal(id, EXTENSION_ID);
  assert.match(fs.readFileSync(path.join(REPO, 'native-host/src/lib.rs'), 'utf8'), new RegExp(`EXTENSION_ID: &str = "${id}"`));
  assert.match(fs.readFileSync(path.join(REPO, 'README.md'), 'utf8'), new RegExp(id));
});

test('the extension pages allow wasm but no remote or inline script', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(EXTENSION_DIR, 'manifest.json'), 'utf8'));
  assert.equal(manifest.manifest_version, 3);
  assert.equal(manifest.content_security_policy.extension_pages, "script-src 'self' 'wasm-unsafe-eval'; object-src 'self'");
  assert.equal(manifest.background.type, 'module');
});
