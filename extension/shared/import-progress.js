// How the import of the mailbox stands, in words and a bar: the popup and
// the app render `status.import` (the engine sends `status_changed` every
// few seconds while it imports), in the words `mailmesh mail status` uses.

import { formatSize } from './drive-client.js';

/** "about 12 min left" from seconds. */
function duration(secs) {
  if (secs < 90) return `${secs} s`;
  if (secs < 5400) return `${Math.ceil(secs / 60)} min`;
  return `${(secs / 3600).toFixed(1)} h`;
}

/** One sentence on what the import does; `roster` names the device that imports. */
export function describeImport(view, roster = []) {
  const progress = `${view.messages_done} of ${view.messages_total} messages, ` +
    `${formatSize(view.bytes_done)} of ${formatSize(view.bytes_total)}`;
  const left = view.seconds_left != null ? `, about ${duration(view.seconds_left)} left` : '';
  const until = view.resumes_at_ms ? ` until ${new Date(view.resumes_at_ms).toLocaleString()}` : '';
  switch (view.state) {
    case 'importing': return `Importing — ${progress}${left}`;
    case 'by_device': {
      const name = roster.find((m) => m.node_id === view.by_device)?.device_name ?? 'another device';
      const doing = view.messages_done < view.messages_total ? ` — ${progress}${left}` : '';
      return `Done by your device ${name}${doing}`;
    }
    case 'waiting_for_devices': return 'Waiting a moment for your other devices';
    case 'paused_budget': return `Paused${until}: the day's download budget is spent — ${progress}`;
    case 'paused_server': return `Paused${until}: the mail server is limiting the account — ${progress}`;
    default: return 'Up to date';
  }
}

/**
 * Renders the import into a text element and a <progress> (hidden when
 * nothing is under way); both hidden outside a network.
 */
export function renderImport(text, bar, status) {
  const view = status?.import;
  text.hidden = !view;
  bar.hidden = !view || view.messages_total === 0 || view.messages_done >= view.messages_total;
  if (!view) return;
  text.textContent = describeImport(view, status.roster);
  text.dataset.state = view.state;
  bar.max = Math.max(1, view.bytes_total);
  bar.value = view.bytes_done;
}
