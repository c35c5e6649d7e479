// Which drive files a tab may show (background/downloads.js serves them,
// the drive lists offer a Preview button for them).

/**
 * How a file is shown in a tab: its media type as served, or null if it is
 * not one a browser shows safely. HTML, SVG and anything scripted are not
 * previewed; text of any kind is shown as plain text, in the charset it
 * was attached with (the engine keeps a plain label; a file without one,
 * such as an upload from this browser, is taken as UTF-8).
 */
export function previewType(mediaType = '') {
  const [head, ...params] = mediaType.toLowerCase().split(';');
  const type = head.trim();
  if (/^image\/(png|jpeg|gif|webp|avif|bmp)$/.test(type)) return type;
  if (type === 'application/pdf' || /^(audio|video)\//.test(type)) return type;
  if (/^text\/(plain|csv|markdown|x-log)$/.test(type) || type === 'application/json') {
    return `text/plain; charset=${charsetOf(params)}`;
  }
  return null;
}

/** The declared charset if the browser knows it by that label, else UTF-8. */
function charsetOf(params) {
  const label = params.map((p) => p.trim()).find((p) => p.startsWith('charset='))?.slice('charset='.length);
  if (!label || !/^[a-z0-9._:-]{1,40}$/.test(label)) return 'utf-8';
  try {
    return new TextDecoder(label).encoding;
  } catch {
    return 'utf-8';
  }
}
