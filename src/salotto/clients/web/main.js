// The page: the nickname form, then the chat. Wires the connection, the model and the view.

import { IrcConnection } from "./connection.js";
import { byteLength, multilineLimits, multilinePieces, splitText } from "./irc.js";
import { basicAuth, contentDisposition, pastedName, uploadError, uploadUrl } from "./media.js";
import { Chat, SERVER_BUFFER, hideSecrets } from "./model.js";
import { base64urlToBytes, subscriptionKeys, targetFromHash } from "./push.js";
import { searchAttrs } from "./search.js";
import { View } from "./view.js";

const $ = (id) => document.getElementById(id);
const NICK_PATTERN = /^[A-Za-z[\]\\`_^{|}][A-Za-z0-9[\]\\`_^{|}-]*$/;
const TYPING_REPEAT_MS = 3000; // IRCv3 +typing: renew "active" at most every 3 seconds
const HISTORY_PAGE = 50;
// Our own prefix as others receive it (":nick!user@host ") is added by the server: leave room for it.
const TEXT_BUDGET_BYTES = 350;
// "REGISTER * * <password>" must fit one 512-byte IRC line; SASL would take more, but one limit is clearer.
const MAX_PASSWORD_BYTES = 300;
// Private conversations of the account with messages in this many days reappear on logging in
// (CHATHISTORY TARGETS), with what came while no page was open.
const PRIVATE_LOOKBACK_DAYS = 7;
const PRIVATE_TARGETS_MAX = 50;
// The always-on setting is asked again (NickServ INFO) when the page comes back into view, at most this often.
const ALWAYS_ON_RECHECK_MS = 10000;
// Where a password typed here cannot be read on the way: https, or this machine itself.
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

let chat = null;
let view = null;
let conn = null;
// A private server's password, once typed: kept in memory (never in the form or in storage) for the next
// try from the form, until the server refuses it or the user leaves (/quit).
let serverPassword = null;
let renderQueued = false;
let typingSent = { target: null, at: 0 };
let replyTo = null; // {buffer, entry}: the message the next one answers
let batchCounter = 0;
let labelCounter = 0;
let alwaysOnAskedAt = 0;
// A message to bring into view once its buffer has it (a search result; loaded with CHATHISTORY AROUND).
let pendingJump = null; // {key, msgid}
// The conversation named in the address (/#%23room, /#nick: a notification clicked), opened once logged in.
let wantedTarget = targetFromHash(location.hash);
// Results asked for at once (SEARCH limit), and messages loaded around a result to show it in its place.
const SEARCH_PAGE = 25;
const AROUND_MESSAGES = 50;
const GAP_PAGE = 100; // messages loaded at once into a gap

// How long the page waits for the server's answer to WEBPUSH REGISTER.
const PUSH_REPLY_MS = 10000;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    view.render();
    flushOutbox();
    jumpIfLoaded();
    updatePushControl();
    updateSearchScope();
  });
}

// What the model asked to send (read markers), and the notifications it collected.
function flushOutbox() {
  for (const [command, params, tags] of chat.outbox.splice(0)) conn.send(command, params, tags || null);
  for (const { buffer, entry } of chat.notifications.splice(0)) notify(buffer, entry);
}

// -- desktop notifications: mentions and private messages while the page is hidden -----------------

function notificationsAvailable() {
  return typeof Notification !== "undefined";
}

function notify(buffer, entry) {
  if (!notificationsAvailable() || Notification.permission !== "granted" || !document.hidden) return;
  const title = buffer === entry.nick ? entry.nick : `${entry.nick} in ${buffer}`;
  const options = { body: entry.text.slice(0, 200), tag: `salotto ${buffer}` };
  let notification;
  try {
    notification = new Notification(title, options);
  } catch {
    // Chrome on Android has no Notification constructor: the service worker shows it (and its click
    // comes back as an "open" message).
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.getRegistration().then((registration) => registration
        && registration.showNotification(title, { ...options, data: { target: buffer } })).catch(() => {});
    }
    return;
  }
  notification.onclick = () => {
    window.focus();
    if (chat.buffer(buffer)) selectBuffer(buffer);
    notification.close();
  };
}

// Asked only when the user clicks the button (never at load), which shows while it can still be asked.
// With push offered, the "Notifications on this device" switch asks instead (and does more).
function updateNotifyButton() {
  const hidden = !notificationsAvailable() || Notification.permission !== "default" || pushOffered();
  if ($("notify-button").hidden !== hidden) $("notify-button").hidden = hidden;
}

// Beside the page, so the chat also works behind a reverse proxy under a sub-path.
function socketUrl() {
  const url = new URL("irc", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = url.hash = "";
  return url.href;
}

// Back to the form with a reason; field: the one to correct. The password is never kept in the form
// after a try: whoever comes back types it again.
function showLoginError(text, field = "nick") {
  dropUploads(); // what was on its way goes with the login that sent it
  $("chat").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = text;
  $("password-input").value = "";
  $("server-password-input").value = "";
  if (field === "server-password") {
    serverPassword = null; // missing or wrong: asked for again
    $("server-password-field").hidden = false;
    $("server-password-input").focus();
  } else if (field === "password") $("password-input").focus();
  else $("nick-input").focus();
  updateLoginForm();
}

function passwordIsExposed() {
  return location.protocol !== "https:" && !LOOPBACK_HOSTS.has(location.hostname);
}

// The button says what will happen; the plain-http warning shows where a password would travel bare.
function updateLoginForm() {
  const password = $("password-input").value;
  const register = $("register-input").checked;
  $("login-button").textContent = register ? "Register and join" : password ? "Log in and join" : "Join the chat";
  $("password-input").autocomplete = register ? "new-password" : "current-password";
  $("password-warning").hidden = !passwordIsExposed();
  $("server-password-input").placeholder = serverPassword ? "Given already (kept until you leave)" : "";
}

function startChat(nick, auth) {
  try {
    localStorage.setItem("salotto.nick", nick);
  } catch {
    // private mode: nothing remembered, nothing lost
  }
  $("login").hidden = true;
  $("chat").hidden = false;
  chat = new Chat();
  chat.hidden = document.hidden;
  if (view) view.destroy();
  cancelReply();
  view = new View(chat);
  view.onSelect = (name) => selectBuffer(name);
  view.onNick = (nick) => openQuery(nick);
  view.onScrollTop = () => loadOlder();
  view.onReply = (entry) => startReply(entry);
  view.onReact = (entry, emoji) => sendReaction(entry, emoji);
  view.onDelete = (entry) => deleteMessage(entry);
  view.onResult = (result) => openResult(result);
  view.onGap = (entry) => fillGap(entry);
  closeSearch();
  dropUploads();
  conn = new IrcConnection(socketUrl(), nick, auth, serverPassword);
  conn.addEventListener("message", (event) => {
    chat.caps = conn.caps;
    chat.handle(event.detail);
    if (chat.pushReplies.length) onPushReplies(chat.pushReplies.splice(0));
    const command = event.detail.command;
    if (command === "005") updateFeatures();
    // The end of the welcome (ISUPPORT all read, VAPID among it): this device's push registration.
    else if (command === "376" || command === "422") syncPush();
    if (chat.notifications.length) flushOutbox(); // now: a hidden page draws no frames
    if (chat.privateTargets.length) openPrivateTargets(chat.privateTargets.splice(0));
    if (chat.joinedEvent) {
      const joined = chat.joinedEvent;
      chat.joinedEvent = null;
      requestLatest(joined);
      if (chat.active && chat.key(chat.active) === chat.key(joined)) $("message-input").focus();
    }
    scheduleRender();
  });
  conn.addEventListener("status", (event) => onStatus(event.detail));
  conn.addEventListener("fatal", (event) => showLoginError(event.detail.reason, event.detail.field));
  chat.setActive(SERVER_BUFFER);
  scheduleRender();
  conn.start();
  $("message-input").focus();
}

function connectingText() {
  if (conn.everRegistered) return "Reconnecting…";
  if (!conn.password) return "Connecting…";
  return conn.registerAccount ? `Creating the account ${conn.wantedNick}…` : `Logging in as ${conn.wantedNick}…`;
}

// Channels to rejoin after a reconnection, noted when the connection is lost.
let toRejoin = [];

function onStatus(status) {
  if (status.state === "connecting") {
    view.status(connectingText(), "busy");
    chat.account = null; // a new connection: logged in again (900) or not at all
    chat.quietLabels.clear(); // what the last one asked is not answered on this one
    chat.alwaysOnPending = false;
    chat.searchLost();
    chat.historyLost();
  }
  else if (status.state === "waiting") {
    view.status(`Connection lost (${status.reason}). Retrying in ${status.retryInS} s…`, "down");
    forgetJoins();
  } else if (status.state === "registered") {
    view.status("");
    $("password-input").value = ""; // the connection keeps it for reconnecting; the form does not
    $("register-input").checked = false;
    updateLoginForm();
    if (conn.everRegistered) rejoin();
    if (chat.account) {
      askAlwaysOn();
      askPrivateTargets();
    }
    openWanted();
    updateFeatures();
  } else view.status("");
}

// -- the account: always-on, and the private conversations that went on without us -----------------

// A request to NickServ whose answer is read by the model, not shown (labeled-response); without
// labeled-response the answer shows as NickServ's notice (and is read all the same).
function askNickServ(text, kind) {
  const quiet = conn.caps.has("labeled-response") && conn.caps.has("batch");
  let tags = null;
  if (quiet) {
    const label = `ns${++labelCounter}`;
    chat.quietLabels.set(label, kind);
    tags = { label };
  }
  return conn.send("PRIVMSG", ["NickServ", text], tags);
}

function askAlwaysOn() {
  if (!chat.account || !conn.registered || !conn.caps.has("labeled-response")) return;
  alwaysOnAskedAt = Date.now();
  askNickServ("INFO", "info");
}

function setAlwaysOn(on) {
  if (!chat.account) return;
  chat.alwaysOnPending = askNickServ(`SET ALWAYS-ON ${on ? "ON" : "OFF"}`, "set");
  if (!chat.alwaysOnPending) chat.error("Not connected: the setting was not changed.");
  scheduleRender();
}

// Private conversations with messages lately (also while no page was open, with always-on): listed
// again, with their history, as unread when nobody read them on another device.
function askPrivateTargets() {
  if (!conn.caps.has("draft/chathistory") || !conn.caps.has("batch")) return;
  const now = new Date();
  const since = new Date(now.getTime() - PRIVATE_LOOKBACK_DAYS * 86400000);
  conn.send("CHATHISTORY", ["TARGETS", `timestamp=${since.toISOString()}`,
    `timestamp=${new Date(now.getTime() + 1000).toISOString()}`, String(PRIVATE_TARGETS_MAX)]);
}

function openPrivateTargets(names) {
  for (const name of names) {
    const buf = chat.buffer(name, "query");
    if (buf.readUntil === null && conn.caps.has("draft/read-marker")) {
      chat.markerAsked.add(chat.key(buf.name));
      conn.send("MARKREAD", [buf.name]);
    }
    requestLatest(buf.name);
  }
  chat.dirty.add("list");
}

// The connection is gone: no channel is joined any more; remember which ones to go back to. Done here,
// not on registration, because the server's autojoin JOIN may be read before "registered" fires.
function forgetJoins() {
  const channels = [...chat.buffers.values()].filter((b) => b.kind === "channel" && b.joined);
  for (const buf of channels) buf.joined = false;
  toRejoin = [...new Set([...toRejoin, ...channels.map((b) => b.name)])];
  chat.dirty.add("list");
  scheduleRender();
}

// After a reconnection: back into the channels we were in (the server's autojoin may add some).
function rejoin() {
  for (const name of toRejoin) conn.send("JOIN", [name]);
  toRejoin = [];
}

function selectBuffer(name) {
  if (chat.active && chat.key(chat.active) !== chat.key(name)) cancelReply();
  chat.setActive(name);
  document.body.classList.remove("show-sidebar", "show-nicks");
  scheduleRender();
  $("message-input").focus();
}

function openQuery(nick) {
  if (chat.isMe(nick)) return;
  const known = chat.buffer(nick);
  chat.buffer(nick, "query");
  selectBuffer(nick);
  if (!known) requestLatest(nick);
}

// A conversation named from outside (the address's #fragment, a notification clicked): a room is
// joined (or shown), a nick's conversation opened.
function openTarget(target) {
  if (!chat || !target || !conn.registered) {
    wantedTarget = target || wantedTarget;
    return;
  }
  if (chat.isChannel(target)) {
    const buf = chat.buffer(target);
    if (buf && buf.joined) selectBuffer(buf.name);
    else {
      chat.switchOnJoin.add(chat.key(target));
      conn.send("JOIN", [target]);
    }
  } else openQuery(target);
  scheduleRender();
}

function openWanted() {
  const target = wantedTarget;
  wantedTarget = null;
  if (!target) return;
  openTarget(target);
  // Opened: a reload lands where the user goes next, not here again.
  history.replaceState(null, "", location.pathname + location.search);
}

// -- history (draft/chathistory, when the server offers it) --------------------------------------

function historyTarget(buf) {
  return buf && buf.kind !== "server" && conn.caps.has("draft/chathistory") && conn.caps.has("batch");
}

function requestLatest(name) {
  const buf = chat.buffer(name);
  if (!historyTarget(buf)) return;
  buf.historyLoading = true;
  conn.send("CHATHISTORY", ["LATEST", buf.name, "*", String(HISTORY_PAGE)]);
}

function loadOlder() {
  const buf = chat.activeBuffer;
  if (!historyTarget(buf) || buf.historyLoading || buf.historyDone) return;
  const first = buf.messages.find((m) => m.msgid || m.kind === "privmsg" || m.kind === "notice" || m.kind === "action");
  const anchor = first && first.msgid ? `msgid=${first.msgid}` : `timestamp=${(first ? first.time : new Date()).toISOString()}`;
  buf.historyLoading = true;
  buf.olderPending = true;
  conn.send("CHATHISTORY", ["BEFORE", buf.name, anchor, String(HISTORY_PAGE)]);
}

// -- what the server offers: search, files, push ------------------------------------------------------

function updateFeatures() {
  $("search-button").hidden = !conn.caps.has("soju.im/search");
  // Shown to guests too (it says why they cannot), not where the server takes no files.
  $("attach-button").hidden = !uploadUrl(chat.isupport.get("soju.im/FILEHOST"), location.href);
  if ($("search-button").hidden) closeSearch();
  updatePushControl();
}

// -- sharing files (soju.im/FILEHOST): drop, paste, the attach button -----------------------------------

const uploadQueue = []; // [{file, target}] waiting their turn
let uploading = null; // {file, target, xhr}

// Why files cannot be shared here, or null when they can.
function uploadRefusal() {
  if (!chat || !conn || !conn.registered) return "Not connected: wait a moment and try again.";
  const url = uploadUrl(chat.isupport.get("soju.im/FILEHOST"), location.href);
  if (!url) return "This server does not take files.";
  if (!chat.account || !conn.password) return "Log in to an account to share files: guests cannot upload (the password field on the first page).";
  const buf = chat.activeBuffer;
  if (!buf || buf.kind === "server") return "Pick a room or a person first, then share the file there.";
  return null;
}

function shareFiles(files) {
  const list = [...files];
  if (!list.length || !chat) return;
  const refusal = uploadRefusal();
  if (refusal) {
    showUploadError(list[0].name, refusal);
    return;
  }
  for (const file of list) uploadQueue.push({ file, target: chat.activeBuffer.name });
  nextUpload();
}

function nextUpload() {
  if (uploading || !uploadQueue.length) return;
  const job = uploadQueue.shift();
  const url = uploadUrl(chat.isupport.get("soju.im/FILEHOST"), location.href);
  if (!url || !chat.account || !conn.password) {
    showUploadError(job.file.name, uploadRefusal() || "This server does not take files.");
    uploadQueue.length = 0;
    return;
  }
  uploading = job;
  const bar = $("upload-bar");
  bar.hidden = false;
  bar.classList.remove("failed");
  $("upload-name").textContent = uploadQueue.length ? `${job.file.name} (+${uploadQueue.length})` : job.file.name;
  $("upload-error").textContent = "";
  const progress = $("upload-progress");
  progress.value = 0;
  const xhr = new XMLHttpRequest();
  job.xhr = xhr;
  xhr.open("POST", url);
  xhr.setRequestHeader("Authorization", basicAuth(chat.account, conn.password));
  xhr.setRequestHeader("Content-Type", job.file.type || "application/octet-stream");
  xhr.setRequestHeader("Content-Disposition", contentDisposition(job.file.name));
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable && event.total) progress.value = event.loaded / event.total;
  });
  xhr.addEventListener("load", () => {
    if (uploading !== job) return; // dropped (dropUploads)
    uploading = null;
    const fileLocation = xhr.getResponseHeader("Location");
    if (xhr.status === 201 && fileLocation) {
      const fileUrl = new URL(fileLocation, url).href;
      sendText(job.target, fileUrl);
      scheduleRender();
      if (uploadQueue.length) nextUpload();
      else hideUpload();
    } else {
      uploadQueue.length = 0;
      showUploadError(job.file.name, uploadError(xhr.status, xhr.responseText));
    }
  });
  xhr.addEventListener("error", () => {
    if (uploading !== job) return;
    uploading = null;
    uploadQueue.length = 0;
    showUploadError(job.file.name, uploadError(0, ""));
  });
  xhr.addEventListener("abort", () => {
    if (uploading !== job) return;
    uploading = null;
    if (uploadQueue.length) nextUpload();
    else hideUpload();
  });
  xhr.send(job.file);
}

function showUploadError(name, text) {
  const bar = $("upload-bar");
  bar.hidden = false;
  bar.classList.add("failed");
  $("upload-name").textContent = name;
  $("upload-error").textContent = text;
}

function hideUpload() {
  $("upload-bar").hidden = true;
  $("upload-bar").classList.remove("failed");
  $("upload-error").textContent = "";
}

// Leaving the chat (or logging in again): the files on their way, sent with that login, are dropped; a
// link arriving later would be posted by whoever is logged in then.
function dropUploads() {
  uploadQueue.length = 0;
  const job = uploading;
  uploading = null;
  if (job && job.xhr) job.xhr.abort();
  hideUpload();
}

function cancelUpload() {
  uploadQueue.length = 0;
  if (uploading && uploading.xhr) uploading.xhr.abort();
  else hideUpload();
}

// Files dragged over the page: a frame says where they will go; dropped anywhere, they are shared.
function setupDrop() {
  let depth = 0;
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  const zone = $("drop-zone");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event) || $("chat").hidden) return;
    event.preventDefault();
    depth++;
    const buf = chat && chat.activeBuffer;
    $("drop-target").textContent = buf && buf.kind !== "server" ? buf.name : "…";
    zone.hidden = false;
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event) || $("chat").hidden) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) zone.hidden = true;
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault(); // never let the browser open the file in place of the chat
    depth = 0;
    zone.hidden = true;
    if (!$("chat").hidden) shareFiles(event.dataTransfer.files);
  });
}

// A picture pasted into the message field is shared (a screenshot has no name: it gets one). A paste
// that has text too (cells copied from a spreadsheet come with a picture of themselves) is text.
function onPaste(event) {
  if (!event.clipboardData || event.clipboardData.types.includes("text/plain")) return;
  const items = [...event.clipboardData.items];
  const files = items.filter((item) => item.kind === "file").map((item) => item.getAsFile()).filter(Boolean);
  if (!files.length) return;
  event.preventDefault();
  shareFiles(files.map((file) => (file.name && file.name !== "image.png")
    ? file : new File([file], pastedName(file.type), { type: file.type })));
}

// -- searching (soju.im/search) ---------------------------------------------------------------------

function openSearch() {
  $("search-panel").hidden = false;
  updateSearchScope();
  $("search-input").focus();
  $("search-input").select();
}

// "In <conversation>" names the one on show, which may change while the panel stays open (it is what
// runSearch searches). Called on every frame drawn: it writes to the page only what changed.
function updateSearchScope() {
  if ($("search-panel").hidden || !chat) return;
  const buf = chat.activeBuffer;
  const here = !!buf && buf.kind !== "server";
  const option = $("search-here");
  const text = here ? `In ${buf.name}` : "In this conversation";
  if (option.textContent !== text) option.textContent = text;
  if (option.disabled === here) option.disabled = !here;
  if (!here && $("search-scope").value === "here") $("search-scope").value = "all";
}

function closeSearch() {
  $("search-panel").hidden = true;
}

function runSearch(more = false) {
  if (!chat || !conn.caps.has("soju.im/search")) return;
  let search = chat.search;
  const attrs = {};
  if (more) {
    if (!search || search.loading || search.done || !search.results.length) return;
    attrs.text = search.text;
    attrs.in = search.target;
    attrs.before = search.results.at(-1).time.toISOString();
    search.loading = true;
    chat.dirty.add("search");
  } else {
    const text = $("search-input").value.trim();
    if (!text) return;
    const buf = chat.activeBuffer;
    const here = $("search-scope").value === "here" && buf && buf.kind !== "server" ? buf.name : null;
    search = chat.newSearch(text, here, SEARCH_PAGE);
    attrs.text = text;
    attrs.in = here;
  }
  attrs.limit = SEARCH_PAGE;
  if (!conn.send("SEARCH", [searchAttrs(attrs)])) {
    search.loading = false;
    search.error = "Not connected: nothing was searched.";
  }
  scheduleRender();
}

// A result clicked: its conversation opens on it, loaded from the history around it when it is not in
// what the page holds (once the conversation's latest messages came, for one the page had not opened).
function openResult(result) {
  const kind = chat.isChannel(result.target) ? "channel" : "query";
  const known = chat.buffer(result.target);
  const buf = known || chat.buffer(result.target, kind);
  selectBuffer(buf.name);
  if (window.matchMedia("(max-width: 760px)").matches) closeSearch();
  if (!result.msgid) return;
  pendingJump = { key: chat.key(buf.name), msgid: result.msgid, asked: false };
  if (!known) requestLatest(buf.name);
  scheduleRender();
}

function jumpIfLoaded() {
  if (!pendingJump) return;
  const buf = chat.activeBuffer;
  if (!buf || chat.key(buf.name) !== pendingJump.key) {
    pendingJump = null;
    return;
  }
  if (view.jumpTo(pendingJump.msgid)) {
    pendingJump = null;
    return;
  }
  if (pendingJump.asked || buf.historyLoading) return;
  pendingJump.asked = true;
  if (!historyTarget(buf)) {
    pendingJump = null;
    return;
  }
  buf.historyLoading = true;
  buf.aroundPending = pendingJump.msgid;
  conn.send("CHATHISTORY", ["AROUND", buf.name, `msgid=${pendingJump.msgid}`, String(AROUND_MESSAGES)]);
}

// A gap's line clicked: the messages between the two sides of it (a page at a time). False when they
// cannot be asked for now (offline, another history request on its way): the line stays clickable.
function fillGap(entry) {
  const buf = chat.activeBuffer;
  if (!historyTarget(buf) || buf.historyLoading) return false;
  const side = (e) => (e.msgid ? `msgid=${e.msgid}` : `timestamp=${e.time.toISOString()}`);
  if (!conn.send("CHATHISTORY", ["BETWEEN", buf.name, side(entry.from), side(entry.to), String(GAP_PAGE)])) return false;
  entry.limit = GAP_PAGE;
  buf.historyLoading = true;
  buf.gapFilling = entry;
  return true;
}

// -- notifications on this device (Web Push: soju.im/webpush) --------------------------------------------

const push = { on: false, busy: false, status: "", error: false, waiting: new Map() };
let serviceWorker = null; // the registration's promise

function pushCapable() {
  return "serviceWorker" in navigator && typeof PushManager !== "undefined" && notificationsAvailable();
}

function pushOffered() {
  return !!(chat && conn && pushCapable() && chat.account && chat.isupport.get("VAPID")
    && (conn.caps.has("soju.im/webpush") || conn.caps.has("draft/webpush")));
}

// Called on every frame drawn: it writes to the page only what changed.
function updatePushControl() {
  const offered = pushOffered();
  const field = $("push-field");
  if (field.hidden === offered) field.hidden = !offered;
  const input = $("push-input");
  // While it works, the box stays as the click left it.
  if (!push.busy && input.checked !== push.on) input.checked = push.on;
  if (input.disabled !== push.busy) input.disabled = push.busy;
  const status = $("push-status");
  // The server pushes while the nick stays online with none of its devices connected (always-on).
  const text = push.on && !push.busy && !push.error && chat.alwaysOn === false
    ? "On, but pushes come only while “Stay online when I leave” is ticked too." : push.status;
  const hidden = !offered || !text;
  if (status.hidden !== hidden) status.hidden = hidden;
  if (status.textContent !== text) status.textContent = text;
  if (status.classList.contains("error") !== push.error) status.classList.toggle("error", push.error);
  updateNotifyButton();
}

function setPushStatus(text, error = false) {
  push.status = text;
  push.error = error;
  updatePushControl();
}

function rememberPush(account) {
  try {
    if (account) localStorage.setItem("salotto.push", account);
    else localStorage.removeItem("salotto.push");
  } catch {
    // no storage: registered again only from the switch
  }
}

function pushAccount() {
  try {
    return localStorage.getItem("salotto.push");
  } catch {
    return null;
  }
}

function sameKey(a, b) {
  if (!a) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

// WEBPUSH REGISTER, answered by its echo (or FAIL WEBPUSH).
function registerPush(subscription) {
  const endpoint = subscription.endpoint;
  const keys = subscriptionKeys(subscription.getKey("p256dh"), subscription.getKey("auth"));
  return new Promise((resolve, reject) => {
    if (!conn.send("WEBPUSH", ["REGISTER", endpoint, keys])) {
      reject(new Error("Not connected."));
      return;
    }
    const timer = setTimeout(() => {
      push.waiting.delete(endpoint);
      reject(new Error("The server did not answer."));
    }, PUSH_REPLY_MS);
    push.waiting.set(endpoint, { resolve, reject, timer });
  });
}

function onPushReplies(replies) {
  for (const reply of replies) {
    const waiting = reply.endpoint ? push.waiting.get(reply.endpoint) : [...push.waiting.values()][0];
    if (reply.error) {
      if (waiting) {
        clearTimeout(waiting.timer);
        push.waiting.delete([...push.waiting.entries()].find(([, w]) => w === waiting)[0]);
        waiting.reject(new Error(reply.error));
      } else setPushStatus(`Notifications: ${reply.error}`, true);
    } else if (reply.command === "REGISTER" && waiting) {
      clearTimeout(waiting.timer);
      push.waiting.delete(reply.endpoint);
      waiting.resolve();
    }
  }
}

// Asked on the click (the browser allows the question only then): permission, a subscription with the
// server's VAPID key, WEBPUSH REGISTER.
async function enablePush() {
  push.busy = true;
  setPushStatus("Turning on…");
  try {
    const permission = Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
    updateNotifyButton();
    if (permission !== "granted") throw new Error("Notifications are blocked for this page: allow them in the browser's site settings.");
    const registration = await serviceWorker;
    if (!registration) throw new Error("This browser could not start the page's service worker.");
    const key = base64urlToBytes(chat.isupport.get("VAPID"));
    let subscription = await registration.pushManager.getSubscription();
    // One made for another account on this browser (a shared computer) is not reused: registered for both,
    // the other's mentions and private messages would show here under this account's switch.
    if (subscription && (!sameKey(subscription.options.applicationServerKey, key) || pushAccount() !== chat.account)) {
      await subscription.unsubscribe();
      subscription = null;
    }
    if (!subscription) {
      try {
        subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
      } catch (err) {
        throw new Error(`The browser's push service refused (${err.message || err.name}).`);
      }
    }
    await registerPush(subscription);
    rememberPush(chat.account);
    push.on = true;
    push.busy = false;
    setPushStatus("On: mentions and private messages reach this device, even with the page closed.");
  } catch (err) {
    push.on = false;
    push.busy = false;
    setPushStatus(err.message || String(err), true);
  }
}

async function disablePush() {
  push.busy = true;
  setPushStatus("Turning off…");
  try {
    const registration = await serviceWorker;
    const subscription = registration && await registration.pushManager.getSubscription();
    if (subscription) {
      conn.send("WEBPUSH", ["UNREGISTER", subscription.endpoint]);
      await subscription.unsubscribe();
    }
  } catch {
    // gone already
  }
  rememberPush(null);
  push.on = false;
  push.busy = false;
  setPushStatus("");
}

// Each connection registers this device's subscription again (the server may have let it expire), when
// it was turned on here for this account.
async function syncPush() {
  if (push.busy) return; // the switch was just used: that decides
  updatePushControl();
  if (!pushOffered() || Notification.permission !== "granted" || pushAccount() !== chat.account) {
    push.on = false;
    updatePushControl();
    return;
  }
  try {
    const registration = await serviceWorker;
    const subscription = registration && await registration.pushManager.getSubscription();
    const key = base64urlToBytes(chat.isupport.get("VAPID"));
    if (!subscription || !sameKey(subscription.options.applicationServerKey, key)) {
      push.on = false;
      updatePushControl();
      return;
    }
    if (push.busy) return;
    await registerPush(subscription);
    push.on = true;
    setPushStatus("On: mentions and private messages reach this device, even with the page closed.");
  } catch (err) {
    push.on = false;
    setPushStatus(err.message || String(err), true);
  }
}

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  serviceWorker = navigator.serviceWorker.register("sw.js", { type: "module", scope: "./" })
    .then(() => navigator.serviceWorker.ready)
    .catch(() => null);
  // A notification clicked while a page is open: that page switches to the conversation.
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data && event.data.type === "open") openTarget(event.data.target);
  });
}

// -- sending -------------------------------------------------------------------------------------

// Text of several lines (a paste): one draft/multiline batch when the server takes it and it fits its
// limits; otherwise each line a message of its own.
function sendText(target, text, action = false, reply = null) {
  const buf = chat.buffer(target);
  const tags = reply && conn.caps.has("message-tags") ? { "+draft/reply": reply } : null;
  const budget = TEXT_BUDGET_BYTES - byteLength(target);
  typingSent = { target: null, at: 0 };
  if (!action && /[\r\n]/.test(text) && sendMultiline(target, text, tags, budget)) return;
  const lines = text.split(/\r?\n|\r/).filter((line) => line.trim());
  for (const line of lines) {
    for (const piece of splitText(line, budget)) {
      const payload = action ? `\x01ACTION ${piece}\x01` : piece;
      if (!conn.send("PRIVMSG", [target, payload], tags)) {
        chat.error("Not connected: the message was not sent.");
        return;
      }
      if (!conn.caps.has("echo-message") && buf) {
        const shown = action ? piece : hideSecrets(target, piece);
        chat.add(buf, { kind: action ? "action" : "privmsg", time: new Date(), nick: conn.nick, text: shown, self: true,
          reply: tags ? reply : null, reactions: null });
      }
    }
  }
}

function sendMultiline(target, text, tags, budget) {
  if (!conn.caps.has("draft/multiline") || !conn.caps.has("batch")) return false;
  const pieces = multilinePieces(text, multilineLimits(conn.availableCaps.get("draft/multiline")), budget - 20);
  if (!pieces) return false;
  const ref = `ml${++batchCounter}`;
  if (!conn.send("BATCH", [`+${ref}`, "draft/multiline", target], tags)) {
    chat.error("Not connected: the message was not sent.");
    return true;
  }
  for (const piece of pieces) {
    const lineTags = piece.concat ? { batch: ref, "draft/multiline-concat": "" } : { batch: ref };
    conn.send("PRIVMSG", [target, piece.text], lineTags);
  }
  conn.send("BATCH", [`-${ref}`]);
  const buf = chat.buffer(target);
  if (!conn.caps.has("echo-message") && buf) {
    const shown = pieces.map((p, i) => (i && !p.concat ? "\n" : "") + p.text).join("");
    chat.add(buf, { kind: "privmsg", time: new Date(), nick: conn.nick, text: shown, self: true,
      reply: tags ? tags["+draft/reply"] : null, reactions: null });
  }
  return true;
}

// -- replies, reactions, deleting ----------------------------------------------------------------

function startReply(entry) {
  const buf = chat.activeBuffer;
  if (!buf || !entry.msgid) return;
  replyTo = { buffer: chat.key(buf.name), entry };
  $("reply-nick").textContent = entry.nick;
  $("reply-text").textContent = entry.text;
  $("reply-bar").hidden = false;
  $("message-input").focus();
}

function cancelReply() {
  replyTo = null;
  $("reply-bar").hidden = true;
}

// +draft/react on a TAGMSG that answers the message (+draft/reply).
function sendReaction(entry, emoji) {
  const buf = chat.activeBuffer;
  if (!buf || !entry.msgid) return;
  if (!conn.caps.has("message-tags")) {
    chat.error("This server does not pass reactions on (no message-tags).");
    scheduleRender();
    return;
  }
  conn.send("TAGMSG", [buf.name], { "+draft/react": emoji, "+draft/reply": entry.msgid });
  if (!conn.caps.has("echo-message")) chat.react(buf, { msgid: null, emoji, nick: conn.nick, to: entry.msgid });
  scheduleRender();
}

function deleteMessage(entry) {
  const buf = chat.activeBuffer;
  if (!chat.canRedact(buf, entry)) return;
  conn.send("REDACT", [buf.name, entry.msgid]);
}

function runCommand(line) {
  const [head, ...rest] = line.slice(1).split(" ");
  const command = head.toLowerCase();
  const args = rest.join(" ");
  const active = chat.activeBuffer;
  const here = active && active.kind !== "server" ? active.name : null;
  switch (command) {
    case "join":
    case "j": {
      const [name, key] = args.split(" ");
      if (!name) return chat.error("Usage: /join #room");
      const channel = chat.isChannel(name) ? name : `#${name}`;
      chat.switchOnJoin.add(chat.key(channel));
      const existing = chat.buffer(channel);
      if (existing && existing.joined) return selectBuffer(channel);
      return conn.send("JOIN", key ? [channel, key] : [channel]);
    }
    case "part":
    case "leave": {
      const target = chat.isChannel(rest[0] || "") ? rest.shift() : here;
      if (!target || !chat.isChannel(target)) return chat.error("Usage: /part [#room] [reason]");
      return conn.send("PART", rest.length ? [target, rest.join(" ")] : [target]);
    }
    case "close": {
      if (!active || active.kind === "server") return;
      if (active.kind === "channel" && active.joined) conn.send("PART", [active.name]);
      chat.closeBuffer(active.name);
      return;
    }
    case "msg":
    case "query": {
      const [nick, ...words] = rest;
      if (!nick) return chat.error(`Usage: /${command} nick [message]`);
      if (!chat.isChannel(nick)) openQuery(nick);
      if (words.length) sendText(nick, words.join(" "));
      return;
    }
    case "me":
      if (!here) return chat.error("/me works in a room or a conversation.");
      return sendText(here, args, true);
    case "nick":
      if (!rest[0]) return chat.error("Usage: /nick newname");
      conn.wantedNick = rest[0];
      return conn.send("NICK", [rest[0]]);
    case "topic":
      if (!here || !chat.isChannel(here)) return chat.error("/topic works in a room.");
      return conn.send("TOPIC", args ? [here, args] : [here]);
    case "quit":
      conn.stop(args || "Leaving");
      serverPassword = null;
      return showLoginError("You left. Enter a nickname to come back.");
    case "quote":
    case "raw":
      return conn.sendRaw(args);
    default:
      // Anything else goes to the server as an IRC command: /away back soon, /whois alice, ...
      return conn.sendRaw(`${head.toUpperCase()}${args ? " " + args : ""}`);
  }
}

function submitMessage(event) {
  event.preventDefault();
  const input = $("message-input");
  const text = input.value;
  if (!text.trim()) return;
  input.value = "";
  fitComposer();
  if (text.startsWith("/") && !text.startsWith("//") && !text.includes("\n")) runCommand(text.trim());
  else {
    const buf = chat.activeBuffer;
    if (!buf || buf.kind === "server") chat.error("This is the server window: pick a room or a person first.");
    else {
      const reply = replyTo && replyTo.buffer === chat.key(buf.name) ? replyTo.entry.msgid : null;
      sendText(buf.name, text.startsWith("//") ? text.slice(1) : text, false, reply);
      cancelReply();
    }
  }
  scheduleRender();
}

// IRCv3 +typing: "active" while typing (renewed every 3 s), "done" when the field is emptied.
function onInput() {
  const buf = chat && chat.activeBuffer;
  if (!buf || buf.kind === "server" || !conn.caps.has("message-tags")) return;
  const text = $("message-input").value;
  const now = Date.now();
  if (text && !text.startsWith("/")) {
    if (typingSent.target !== buf.name || now - typingSent.at > TYPING_REPEAT_MS) {
      conn.send("TAGMSG", [buf.name], { "+typing": "active" });
      typingSent = { target: buf.name, at: now };
    }
  } else if (typingSent.target === buf.name) {
    conn.send("TAGMSG", [buf.name], { "+typing": "done" });
    typingSent = { target: null, at: 0 };
  }
}

// The message field grows with the lines pasted into it (up to a few; it scrolls past that).
function fitComposer() {
  const input = $("message-input");
  input.style.height = "auto";
  if (input.value.includes("\n")) input.style.height = `${Math.min(input.scrollHeight + 2, 160)}px`;
  else input.style.height = "";
}

// Enter sends; Shift+Enter starts a new line; Escape drops the reply.
function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  } else if (event.key === "Escape" && replyTo) cancelReply();
}

function setup() {
  const nickInput = $("nick-input");
  try {
    nickInput.value = localStorage.getItem("salotto.nick") || "";
  } catch {
    // no storage: an empty field
  }
  nickInput.focus();
  updateLoginForm();
  $("password-input").addEventListener("input", updateLoginForm);
  $("register-input").addEventListener("change", updateLoginForm);
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const nick = nickInput.value.trim();
    const password = $("password-input").value;
    const register = $("register-input").checked;
    if (!NICK_PATTERN.test(nick) || nick.length > 30) {
      $("login-error").textContent = "A nickname is one word of letters, digits and _-[]{}|^` (not starting with a digit or -).";
      return;
    }
    if (register && !password) {
      $("login-error").textContent = "Choose a password for the new account.";
      $("password-input").focus();
      return;
    }
    if (byteLength(password) > MAX_PASSWORD_BYTES) {
      $("login-error").textContent = `A password here can be at most ${MAX_PASSWORD_BYTES} bytes long.`;
      $("password-input").focus();
      return;
    }
    const typedServerPassword = $("server-password-input").value;
    if (byteLength(typedServerPassword) > MAX_PASSWORD_BYTES) {
      $("login-error").textContent = `The server password can be at most ${MAX_PASSWORD_BYTES} bytes long.`;
      $("server-password-input").focus();
      return;
    }
    if (typedServerPassword) serverPassword = typedServerPassword;
    $("server-password-input").value = ""; // in memory from now on, not in the page
    $("login-error").textContent = "";
    if (conn) conn.stop();
    startChat(nick, password ? { password, register } : null);
  });
  $("composer").addEventListener("submit", submitMessage);
  $("message-input").addEventListener("input", () => {
    onInput();
    fitComposer();
  });
  $("message-input").addEventListener("keydown", onComposerKey);
  $("reply-cancel").addEventListener("click", () => {
    cancelReply();
    $("message-input").focus();
  });
  updateNotifyButton();
  $("notify-button").addEventListener("click", async () => {
    if (notificationsAvailable()) await Notification.requestPermission();
    updateNotifyButton();
  });
  $("attach-button").addEventListener("click", () => {
    const refusal = uploadRefusal();
    if (refusal) showUploadError("", refusal);
    else $("file-input").click();
  });
  $("file-input").addEventListener("change", (event) => {
    shareFiles(event.target.files);
    event.target.value = "";
  });
  $("upload-cancel").addEventListener("click", cancelUpload);
  $("message-input").addEventListener("paste", onPaste);
  setupDrop();
  $("search-button").addEventListener("click", () => ($("search-panel").hidden ? openSearch() : closeSearch()));
  $("search-close").addEventListener("click", () => {
    closeSearch();
    $("message-input").focus();
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch();
  });
  $("search-more").addEventListener("click", () => runSearch(true));
  $("search-panel").addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      closeSearch();
      $("message-input").focus();
    }
  });
  $("push-input").addEventListener("change", (event) => {
    if (event.target.checked) enablePush();
    else disablePush();
  });
  registerServiceWorker();
  window.addEventListener("hashchange", () => {
    const target = targetFromHash(location.hash);
    if (target) {
      wantedTarget = target;
      if (conn && conn.registered) openWanted();
    }
  });
  $("menu-button").addEventListener("click", () => document.body.classList.toggle("show-sidebar"));
  $("nicks-button").addEventListener("click", () => document.body.classList.toggle("show-nicks"));
  $("always-on-input").addEventListener("change", (event) => setAlwaysOn(event.target.checked));
  $("scrim").addEventListener("click", () => document.body.classList.remove("show-sidebar", "show-nicks"));
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = $("join-input");
    const name = field.value.trim();
    field.value = "";
    if (!name || !chat) return;
    if (chat.isChannel(name)) runCommand(`/join ${name}`);
    else openQuery(name);
    document.body.classList.remove("show-sidebar");
    scheduleRender();
  });
  document.addEventListener("visibilitychange", () => {
    if (!chat) return;
    chat.hidden = document.hidden;
    // Another device may have changed it meanwhile.
    if (!document.hidden && Date.now() - alwaysOnAskedAt > ALWAYS_ON_RECHECK_MS) askAlwaysOn();
    if (!document.hidden && view.atEnd && view.atBottom()) {
      chat.markSeen();
      scheduleRender();
    }
  });
  // The typing line expires on its own.
  setInterval(() => {
    if (chat && chat.activeBuffer && chat.activeBuffer.typing.size) {
      chat.dirty.add("typing");
      scheduleRender();
    }
  }, 1000);
}

setup();
