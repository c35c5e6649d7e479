// The app's settings section: how the mail import stands and how it
// behaves (the folders it reads, its daily download budget).

import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

/** @param {Document} doc */
export function showSettings(doc) {
  const form = doc.getElementById('import-form');
  const budget = doc.getElementById('import-budget');
  const result = doc.getElementById('import-result');

  const render = (settings) => {
    doc.getElementById('import-folders').textContent = `Folders read: ${settings.folders.join(', ')}`;
    budget.value = settings.budget_bytes_per_day == null ? '0' : String(Math.round(settings.budget_bytes_per_day / 1e6));
    doc.getElementById('import-budget-source').textContent = {
      provider: "Your provider's published limit, less a fifth left for your own mail app.",
      config: 'Set by you.',
    }[settings.budget_source] ?? 'Your provider publishes no limit; mailmesh slows down when the server asks.';
  };

  const load = async (budgetMb = null) => render(await callWorker({ type: RuntimeType.IMPORT_SETTINGS, budgetMb }));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const mb = Number(budget.value);
    if (!Number.isInteger(mb) || mb < 0) {
      result.textContent = 'The budget is a whole number of MB (0 for none).';
      return;
    }
    try {
      await load(mb);
      result.textContent = 'Saved.';
    } catch (e) {
      result.textContent = `Not saved: ${e.message}`;
    }
  });
  load().catch((e) => { result.textContent = e.message; });
}
