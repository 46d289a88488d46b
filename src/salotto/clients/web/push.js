// Web Push (soju.im/webpush): the keys as the WEBPUSH command carries them, and the notification a
// push's IRC line becomes. No DOM here: the service worker (sw.js) and node's tests load it.

import { nickOf, parseMessage, stripFormatting } from "./irc.js";

const CHANNEL_PREFIXES = "#&";
const BODY_CHARS = 300;

export function base64urlToBytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

export function bytesToBase64url(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// WEBPUSH REGISTER's <keys>: "p256dh=<b64url>;auth=<b64url>" (message-tag form; base64url needs no
// escaping).
export function subscriptionKeys(p256dh, auth) {
  return `p256dh=${bytesToBase64url(p256dh)};auth=${bytesToBase64url(auth)}`;
}

// The push's payload (one IRC line) as a notification: {title, body, target, tag, msgid}, or null for a
// line that is not a message. target: the conversation to open (the channel, or the sender for a
// private message).
export function pushNotification(line) {
  const msg = parseMessage(String(line).trim());
  if ((msg.command !== "PRIVMSG" && msg.command !== "NOTICE") || msg.params.length < 2) return null;
  const from = nickOf(msg.source) || "someone";
  let to = msg.params[0];
  while (to && "@+%~&".includes(to[0]) && CHANNEL_PREFIXES.includes(to[1] || "")) to = to.slice(1);
  let text = msg.params[1];
  let action = false;
  if (text.startsWith("\x01")) {
    const body = text.replace(/^\x01|\x01$/g, "");
    if (!body.toUpperCase().startsWith("ACTION")) return null;
    text = body.slice(7);
    action = true;
  }
  text = stripFormatting(text);
  if (action) text = `* ${from} ${text}`;
  if (text.length > BODY_CHARS) text = `${text.slice(0, BODY_CHARS)}…`;
  const channel = CHANNEL_PREFIXES.includes(to[0] || "");
  const target = channel ? to : from;
  return {
    title: channel ? `${from} in ${to}` : from,
    body: text,
    target,
    tag: `salotto ${target.toLowerCase()}`,
    msgid: msg.tags.msgid || null,
  };
}

// Where a click on a notification leads: the page (beside the service worker) with the conversation in
// the fragment, which the page opens: "#%23lobby", "#alice".
export function conversationUrl(base, target) {
  const url = new URL("./", base);
  url.hash = encodeURIComponent(target);
  return url.href;
}

// The window a notification's click brings forward: one of the chat's own pages (the focused one
// first), or null. clients.matchAll({includeUncontrolled: true}) lists every window of the origin: a page
// of another app of the site (the chat under a sub-path, behind a proxy), /metrics..., which would be
// brought forward and would not know what to do with the conversation. windows: [{url, focused}]; scope:
// the service worker's (the page's directory).
export function chatWindow(windows, scope) {
  const pages = windows.filter((w) => {
    let url;
    try {
      url = new URL(w.url);
    } catch {
      return false;
    }
    url.hash = "";
    url.search = "";
    return url.href === scope || url.href === new URL("index.html", scope).href;
  });
  return pages.find((w) => w.focused) || pages[0] || null;
}

// The fragment of the page's address as a conversation to open ("#%23lobby" -> "#lobby"), or null.
export function targetFromHash(hash) {
  if (!hash || hash.length < 2) return null;
  let target;
  try {
    target = decodeURIComponent(hash.slice(1));
  } catch {
    return null;
  }
  return /^[^\s,\x00-\x1f]{1,64}$/.test(target) ? target : null;
}
