// Issue 17, previews of media and PDFs: a sound plays in its tab and its
// viewer can seek (the tab asks the service worker for byte ranges, each
// streamed from the engine from that byte); a PDF opens in the browser's
// viewer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { foundedNode } from '../harness/owner.js';
import { appendMessages, mailWithAttachment } from '../harness/mail-client.js';
import { within } from '../harness/idle-time.js';
import { waitFor } from '../harness/util.js';

/** Chromium's own PDF viewer, an extension built into the browser. */
const PDF_VIEWER = 'chrome-extension://mhjfbmdgcfjbbpaeojofohoefgiehjai/';

/** `seconds` of a 440 Hz tone: 8 kHz, mono, 8-bit PCM WAV. */
function wav(seconds) {
  const samples = Buffer.alloc(8000 * seconds);
  for (let i = 0; i < samples.length; i++) samples[i] = 128 + Math.round(100 * Math.sin((2 * Math.PI * 440 * i) / 8000));
  const head = Buffer.alloc(44);
  head.write('RIFF', 0);
  head.writeUInt32LE(36 + samples.length, 4);
  head.write('WAVEfmt ', 8);
  head.writeUInt32LE(16, 16);
  head.writeUInt16LE(1, 20); // PCM
  head.writeUInt16LE(1, 22); // mono
  head.writeUInt32LE(8000, 24);
  head.writeUInt32LE(8000, 28); // bytes a second
  head.writeUInt16LE(1, 32);
  head.writeUInt16LE(8, 34);
  head.write('data', 36);
  head.writeUInt32LE(samples.length, 40);
  return Buffer.concat([head, samples]);
}

/** A one-page PDF saying `text`, with a correct cross-reference table. */
function pdf(text) {
  const stream = `BT /F1 24 Tf 72 700 Td (${text}) Tj ET`;
  const objects = ['<< /Type /Catalog /Pages 2 0 R >>', '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`, '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>'];
  let body = '%PDF-1.4\n';
  const offsets = objects.map((object, i) => {
    const at = body.length;
    body += `${i + 1} 0 obj\n${object}\nendobj\n`;
    return at;
  });
  const xref = body.length;
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body);
}

test('a sound previews in a tab that can seek, and a PDF opens in the browser\'s viewer', async (t) => {
  const { mail, node, owner, password } = await foundedNode(t, 'mailmesh-preview-');
  const sound = wav(6);
  await appendMessages(mail.imapPort, owner, password, [
    mailWithAttachment({ from: 'bob@example.org', subject: 'the tune', name: 'tune.wav', type: 'audio/wav', bytes: sound }),
    mailWithAttachment({ from: 'bob@example.org', subject: 'the plan', name: 'plan.pdf', type: 'application/pdf',
      bytes: pdf('The plan for March') }),
  ]);
  await waitFor('both files imported', async () =>
    JSON.parse((await node.mailmesh('files', 'list', '--json')).stdout).length === 2, { timeoutMs: 60_000, everyMs: 500 });

  await node.startBrowser();
  const app = await node.openPage('app/app.html#drive');
  const rows = app.locator('#drive-files li.file');
  const preview = async (name) => {
    const tab = within(`the tab of ${name}`, node.context.waitForEvent('page', { timeout: 0 }));
    await within(name, rows.filter({ hasText: name }).waitFor({ timeout: 0 }));
    await rows.filter({ hasText: name }).locator('button.preview').click();
    const page = await tab;
    await within(`${name} at its address`, page.waitForURL(/\/preview\//, { timeout: 0 }));
    return page;
  };

  // The sound: its player knows it lasts 6 s, can seek anywhere in it, and
  // has the sound at 5 s.
  const tune = await preview('tune.wav');
  await within('the sound loaded', tune.waitForFunction(() => document.querySelector('video, audio')?.duration === 6,
    null, { timeout: 0 }));
  const seekable = await tune.evaluate(() => {
    const media = document.querySelector('video, audio');
    return media.seekable.length === 1 ? [media.seekable.start(0), media.seekable.end(0)] : [];
  });
  assert.deepEqual(seekable, [0, 6], 'the whole sound is seekable');
  await tune.evaluate(() => {
    const media = document.querySelector('video, audio');
    media.pause();
    media.currentTime = 5;
  });
  await within('seeked to 5 s', tune.waitForFunction(() => {
    const media = document.querySelector('video, audio');
    return !media.seeking && media.currentTime === 5 && media.readyState >= 2;
  }, null, { timeout: 0 }));

  // The ranges themselves, as the player asks for them: bytes equal. (Asked
  // from the app, once the worker that serves them controls it: an app
  // page that began loading before the worker first activated is not
  // claimed, so it is loaded again now that the worker serves the tune.)
  const url = tune.url();
  if (!(await app.evaluate(() => Boolean(navigator.serviceWorker.controller)))) await app.reload();
  await within('the app served by the worker', app.waitForFunction(() => navigator.serviceWorker.controller,
    null, { timeout: 0 }));
  const ranges = await app.evaluate(async (url) => {
    const ask = async (range) => {
      const response = await fetch(url, { headers: { Range: range } });
      return { status: response.status, range: response.headers.get('Content-Range'),
        bytes: [...new Uint8Array(await response.arrayBuffer())] };
    };
    return { middle: await ask('bytes=40000-40099'), open: await ask('bytes=47990-'), last: await ask('bytes=-4'),
      beyond: await ask('bytes=48044-') };
  }, url);
  assert.deepEqual(ranges.middle, { status: 206, range: 'bytes 40000-40099/48044', bytes: [...sound.subarray(40000, 40100)] });
  assert.deepEqual(ranges.open, { status: 206, range: 'bytes 47990-48043/48044', bytes: [...sound.subarray(47990)] });
  assert.deepEqual(ranges.last, { status: 206, range: 'bytes 48040-48043/48044', bytes: [...sound.subarray(48040)] });
  assert.deepEqual(ranges.beyond, { status: 416, range: 'bytes */48044', bytes: [] });

  // Chrome stops an idle worker (a sound playing from what its player
  // holds asks nothing for a while): a seek after that still finds the file.
  await (await node.serviceWorker()).evaluate(() => { self.previewTestMark = 'the worker before'; });
  const cdp = await app.context().newCDPSession(app);
  await cdp.send('ServiceWorker.enable');
  await cdp.send('ServiceWorker.stopAllWorkers');
  await cdp.detach();
  const again = await app.evaluate(async (url) => {
    const response = await fetch(url, { headers: { Range: 'bytes=1000-1099' } });
    return { status: response.status, bytes: [...new Uint8Array(await response.arrayBuffer())] };
  }, url);
  assert.equal(await (await node.serviceWorker()).evaluate(() => self.previewTestMark), undefined,
    'a new worker answered');
  assert.deepEqual(again, { status: 206, bytes: [...sound.subarray(1000, 1100)] }, 'the file is still found');
  await tune.close();

  // The PDF opens in Chromium's viewer, not as a download.
  const plan = await preview('plan.pdf');
  await waitFor('Chromium\'s PDF viewer in the tab', () => plan.frames().some((f) => f.url().startsWith(PDF_VIEWER)),
    { timeoutMs: 60_000, everyMs: 100 });
  assert.equal(await plan.evaluate(() => document.contentType), 'application/pdf');
  const response = await app.evaluate(async (url) => {
    const r = await fetch(url);
    return { type: r.headers.get('Content-Type'), text: await r.text() };
  }, plan.url());
  assert.equal(response.type, 'application/pdf');
  assert.match(response.text, /The plan for March/);
});
