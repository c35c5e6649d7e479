// The onboarding page, opened on install: checks the host, then (in a later
// version) takes the mail account and confirms the node by mail.

import { watchState } from '../shared/host-state.js';
import { renderNodeCard } from '../shared/node-card.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

callWorker({ type: RuntimeType.GET_STATE }).catch(() => {});
watchState((state) => renderNodeCard(document, state));
document.getElementById('retry').addEventListener('click', () => callWorker({ type: RuntimeType.REFRESH }).catch(() => {}));
document.getElementById('start-engine').addEventListener('click', () =>
  callWorker({ type: RuntimeType.START_ENGINE }).catch(() => {}));
