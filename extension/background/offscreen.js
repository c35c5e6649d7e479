// The offscreen document hosts WebRTC, which a service worker cannot use.
// Chrome allows one per extension; this makes sure it exists.

const OFFSCREEN_URL = 'offscreen/offscreen.html';

let creating = null;

export async function ensureOffscreenDocument() {
  const existing = await chrome.runtime.getContexts({
    contextTypes: ['OFFSCREEN_DOCUMENT'],
    documentUrls: [chrome.runtime.getURL(OFFSCREEN_URL)],
  });
  if (existing.length > 0) return;
  creating ??= chrome.offscreen
    .createDocument({
      url: OFFSCREEN_URL,
      reasons: [chrome.offscreen.Reason.WEB_RTC],
      justification: 'Peer-to-peer links between your mailmesh devices use WebRTC data channels.',
    })
    .finally(() => {
      creating = null;
    });
  await creating;
}
