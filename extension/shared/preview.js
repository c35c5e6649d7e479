// Which drive files a tab may show (background/downloads.js serves them,
// the drive lists offer a Preview button for them).

/**
 * How a file is shown in a tab: its media type as served, or null if it is
 * not one a browser shows safely. HTML, SVG and anything scripted are not
 * previewed; text of any kind is shown as plain text.
 */
export function previewType(mediaType = '') {
  const type = mediaType.toLowerCase().split(';')[0].trim();
  if (/^image\/(png|jpeg|gif|webp|avif|bmp)$/.test(type)) return type;
  if (type === 'application/pdf' || /^(audio|video)\//.test(type)) return type;
  if (/^text\/(plain|csv|markdown|x-log)$/.test(type) || type === 'application/json') return 'text/plain; charset=utf-8';
  return null;
}
