// The app's settings section: how the mail import stands and how it
// behaves (folders, start date, largest attachment, small inline images,
// daily download budget). The engine checks a change whole and says what
// is wrong.

import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

const MB = 1e6;
const KB = 1e3;

/** @param {Document} doc */
export function showSettings(doc) {
  const field = (id) => doc.getElementById(id);
  const result = field('import-result');

  const render = (settings) => {
    field('import-folders').value = settings.folders.join(', ');
    field('import-since').value = settings.since ?? '';
    field('import-max').value = String(Math.round(settings.max_attachment_bytes / MB));
    field('import-inline').value = String(Math.round(settings.inline_images_under_bytes / KB));
    field('import-budget').value = settings.budget_bytes_per_day == null ? '0' : String(Math.round(settings.budget_bytes_per_day / MB));
    field('import-budget-source').textContent = {
      provider: "Your provider's published limit, less a fifth left for your own mail app.",
      config: 'Set by you.',
    }[settings.budget_source] ?? 'Your provider publishes no limit; mailmesh slows down when the server asks.';
  };

  const load = async (change = {}) => render(await callWorker({ type: RuntimeType.IMPORT_SETTINGS, change }));

  field('import-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const change = {
      folders: field('import-folders').value.split(',').map((f) => f.trim()).filter(Boolean),
      since: field('import-since').value,
      max_attachment_mb: Number(field('import-max').value),
      inline_images_under_kb: Number(field('import-inline').value),
      budget_mb: Number(field('import-budget').value),
    };
    try {
      await load(change);
      result.textContent = 'Saved.';
    } catch (e) {
      result.textContent = `Not saved: ${e.message}`;
    }
  });
  load().catch((e) => { result.textContent = e.message; });
}
