// webchat/app.js — the /webchat demo page: Bot Framework Web Chat (the
// botframework-webchat bundle, window.WebChat) with dlsse's directLine
// adapter. Switching an existing Web Chat page to dlsse is the two lines
// marked below; everything else is what any Web Chat page does.
//
// For browser tests the page records Web Chat's actions in
// window.__webchat.actions (type and, for activities, id and text) through a
// store middleware, and exposes the adapter as window.__dlsse.

import { createDirectLine, fetchToken } from '/sdk/dlsse.js';

const link = document.getElementById('link');
const mount = document.getElementById('webchat');

function showLink(state, text) {
  link.dataset.state = state;
  link.textContent = text;
}

function problem(html) {
  showLink('failed', 'not started');
  const div = document.createElement('div');
  div.id = 'problem';
  div.innerHTML = html; // fixed text of this file, never data
  mount.replaceChildren(div);
}

// Web Chat's store middleware: record what happens, for tests and for a
// developer's console.
const record = { actions: [] };
window.__webchat = record;
function recorder() {
  return (next) => (action) => {
    const a = action.payload && action.payload.activity;
    record.actions.push(a ? { type: action.type, id: a.id, text: a.text } : { type: action.type });
    return next(action);
  };
}

async function main() {
  if (!window.WebChat) {
    problem('<p>The Web Chat bundle is not installed on this gateway.</p>' +
      '<p>Run <code>./scripts/fetch-webchat</code> (it downloads botframework-webchat from the npm registry once) ' +
      'and restart dlsse, or set <code>webchat_bundle</code> to a copy of <code>dist/webchat.js</code>.</p>');
    return;
  }
  let token;
  try {
    token = await fetchToken(location.origin + '/v3/directline');
  } catch (err) {
    problem(`<p>Could not get a token from the gateway.</p><p>Is token-server mode on (<code>dlsse -demo</code>, or <code>directline_secret</code>)?</p>`);
    console.error(err);
    return;
  }

  // The two dlsse lines: instead of WebChat.createDirectLine({ token }).
  const directLine = createDirectLine({ domain: location.origin + '/v3/directline', token });
  window.__dlsse = directLine;

  directLine.dlsseStatus$.subscribe((s) => {
    if (!s) return;
    if (s.state === 'online' && s.link !== 'down') showLink('online', 'online');
    else if (s.state === 'ended') showLink('ended', 'conversation ended');
    else showLink('reconnecting', s.state === 'unavailable' ? 'Direct Line unavailable, retrying…' : 'reconnecting…');
  });
  directLine.connectionStatus$.subscribe((s) => {
    if (s === 3) showLink('failed', 'token expired (reload the page)');
    else if (s === 4) showLink('failed', 'failed to connect');
    else if (s === 5) showLink('ended', 'conversation ended');
  });

  const store = window.WebChat.createStore({}, recorder);
  window.WebChat.renderWebChat({ directLine, store, username: 'You' }, mount);
  window.addEventListener('pagehide', () => directLine.end());
}

main();
