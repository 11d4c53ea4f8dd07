// app.js — the plain demo page (index.html): one conversation with the bot
// through dlsse's client library, no Web Chat. It gets a token from the
// gateway's token-server mode (POST /v3/directline/tokens/generate without
// Authorization: the gateway holds the secret), shows incoming messages,
// sends the input's text, and shows the connection state.
//
// Text from the bot or the user is only ever set with textContent, never
// parsed as HTML: an activity cannot inject markup into the page.

import { createDirectLine, fetchToken, ConnectionStatus } from '/sdk/dlsse.js';

const $ = (id) => document.getElementById(id);
const messages = $('messages');
const input = $('input');
const send = $('send');
const status = $('status');
const form = $('form');

// A user id for this page load. getRandomValues works on plain http too
// (randomUUID needs a secure context).
const userId = 'dl_' + Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');

function scrollDown() {
  messages.scrollTop = messages.scrollHeight;
}

/** Appends a line: a message (mine or the bot's) or a note from the page. */
function append(text, kind, id) {
  const li = document.createElement('li');
  li.className = kind;
  li.textContent = text;
  if (id) li.dataset.id = id;
  messages.append(li);
  scrollDown();
  return li;
}

function note(text) {
  append(text, 'note');
}

// -- connection state ------------------------------------------------------

let webChatStatus = ConnectionStatus.Uninitialized;
let dlsse = null; // {state, reason, retryIn, link} from the stream

/** One word for #status's data-state, and the text a person reads. */
function describe() {
  switch (webChatStatus) {
    case ConnectionStatus.ExpiredToken: return ['expired', 'token expired (reload the page)'];
    case ConnectionStatus.FailedToConnect: return ['failed', 'failed to connect'];
    case ConnectionStatus.Ended: return ['ended', 'conversation ended'];
    default: break;
  }
  // dlsse's own view first: it says "reconnecting" while the library keeps
  // a short outage hidden from Web Chat.
  if (dlsse) {
    if (dlsse.link === 'down' || dlsse.state === 'reconnecting') return ['reconnecting', 'reconnecting…'];
    if (dlsse.state === 'unavailable') return ['reconnecting', 'Direct Line unavailable, retrying…'];
    if (dlsse.state === 'online') return ['online', 'online'];
  }
  if (webChatStatus === ConnectionStatus.Online) return ['online', 'online'];
  return ['connecting', 'connecting…'];
}

function showStatus() {
  const [state, text] = describe();
  status.dataset.state = state;
  status.textContent = text;
  const usable = state !== 'ended' && state !== 'failed' && state !== 'expired';
  input.disabled = !usable;
  send.disabled = !usable;
}

// -- start -----------------------------------------------------------------

async function main() {
  let token;
  try {
    token = await fetchToken(location.origin + '/v3/directline');
  } catch (err) {
    status.dataset.state = 'failed';
    status.textContent = 'no token';
    note(`Could not get a token from the gateway (${err.message}). Is token-server mode on (dlsse -demo, or directline_secret)?`);
    return;
  }

  const directLine = createDirectLine({ domain: location.origin + '/v3/directline', token, userId });
  window.__dlsse = directLine; // for debugging and browser tests

  directLine.connectionStatus$.subscribe((s) => { webChatStatus = s; showStatus(); });
  directLine.dlsseStatus$.subscribe((s) => { dlsse = s; showStatus(); });
  directLine.activity$.subscribe((activity) => {
    if (activity.type !== 'message' || typeof activity.text !== 'string') return;
    const mine = Boolean(activity.from && activity.from.id === userId);
    append(activity.text, mine ? 'mine' : 'bot', activity.id);
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    // The echo on the stream shows the message: nothing is drawn here.
    directLine.postActivity({ type: 'message', from: { id: userId }, text }).subscribe({
      next: (id) => {
        if (id === 'retry') note(`"${text}" may not have reached the bot.`);
      },
      error: (err) => note(`"${text}" was not sent: ${err.message}`),
    });
    input.focus();
  });

  window.addEventListener('pagehide', () => directLine.end());
  // Back from the back/forward cache the ended connection is gone: start over.
  window.addEventListener('pageshow', (e) => { if (e.persisted) location.reload(); });
  showStatus();
  input.focus();
}

main();
