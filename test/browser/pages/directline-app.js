// The browser test's page of another origin: Web Chat with its own
// WebChat.createDirectLine (DirectLineJS inside the Web Chat bundle, as
// shipped), whose only dlsse-specific option is its domain. The query:
//
//   domain=          dlsse's Direct Line base URL (through nginx)
//   token=           a token to use; without it, one from dlsse's
//                    token-server mode (POST {domain}/tokens/generate)
//   conversationId=  join this conversation instead of starting one
//   webSocket=false  DirectLineJS's polling mode (default: WebSocket)
//
// For the test it records, as the demo page does, Web Chat's actions in
// window.__webchat.actions through a store middleware, and DirectLineJS's
// connection statuses in window.__webchat.statuses (and a failure to start
// in window.__webchat.error); the DirectLine object is window.__directLine,
// the store window.__store.

const params = new URLSearchParams(location.search);
const link = document.getElementById('link');
const record = { actions: [], statuses: [] };
window.__webchat = record;

// DirectLineJS's ConnectionStatus values.
const statusNames = ['uninitialized', 'connecting', 'online', 'token expired', 'failed to connect', 'ended'];

function recorder() {
  return (next) => (action) => {
    const a = action.payload && action.payload.activity;
    record.actions.push(a ? { type: action.type, id: a.id, text: a.text } : { type: action.type });
    return next(action);
  };
}

async function main() {
  const domain = params.get('domain');
  let token = params.get('token');
  if (!token) {
    const res = await fetch(domain + '/tokens/generate', { method: 'POST', cache: 'no-store' });
    if (!res.ok) throw new Error(`tokens/generate: ${res.status}`);
    ({ token } = await res.json());
  }
  const options = { domain, token };
  if (params.get('conversationId')) options.conversationId = params.get('conversationId');
  if (params.get('webSocket') === 'false') options.webSocket = false;
  document.getElementById('title').textContent += options.webSocket === false ? ' (polling)' : ' (WebSocket)';

  const directLine = window.WebChat.createDirectLine(options);
  window.__directLine = directLine;
  directLine.connectionStatus$.subscribe((s) => {
    record.statuses.push(s);
    link.dataset.state = s === 2 ? 'online' : s >= 3 ? 'failed' : 'connecting';
    link.textContent = statusNames[s] || String(s);
  });

  const store = window.WebChat.createStore({}, recorder);
  window.__store = store;
  window.WebChat.renderWebChat({ directLine, store, username: 'You' }, document.getElementById('webchat'));
}

main().catch((err) => {
  record.error = String(err);
  link.dataset.state = 'failed';
  link.textContent = 'not started';
  console.error(err);
});
