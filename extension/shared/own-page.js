// Who may talk to privileged handlers: only pages of this extension.

/** True when the sender is a page of this extension (not a web page). */
export function isOwnPage(sender) {
  const ownOrigin = new URL(chrome.runtime.getURL('/')).origin;
  return sender.id === chrome.runtime.id && typeof sender.url === 'string' && new URL(sender.url).origin === ownOrigin;
}
