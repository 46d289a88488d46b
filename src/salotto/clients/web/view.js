// Drawing the chat with DOM calls only. Text from the network goes in through textContent and
// text nodes, never through innerHTML: a message is shown as the characters it contains.

import { filehostOrigin, formatBytes, ownFile } from "./media.js";
import { SERVER_BUFFER, seqIndex } from "./model.js";
import { matchRanges } from "./search.js";

// The page holds a window of a buffer's messages, not all of them (a buffer keeps up to 10,000):
const DOM_INITIAL = 200; // lines drawn when a buffer is opened
const DOM_CHUNK = 50; // lines added at once when scrolling past either end of the window
const DOM_MAX = 500; // lines kept in the page; past that the far end of the window goes
// The reactions one click away; any other comes from another client and shows the same way.
export const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🎉"];
const PREVIEW_CHARS = 120;
// Shared files shown under one message (more links stay links).
const MAX_MEDIA_PER_LINE = 4;

const $ = (id) => document.getElementById(id);

function el(tag, className = "", text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

// http(s) links and www. addresses; trailing punctuation stays text.
const LINK = /\b(?:https?:\/\/|www\.)[^\s<>"]+/gi;

function safeHref(candidate) {
  try {
    const url = new URL(candidate.startsWith("www.") ? "http://" + candidate : candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

// Text with its links; links to this server's own files (/files/<id>/<name>) read as the file's name and
// are returned ([{kind, name, href}]) so the line can show the picture, the video or the file's size.
export function appendRichText(parent, text, origin = null, aliases = []) {
  const files = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let found = match[0];
    const trailing = /[.,;:!?'")\]]+$/.exec(found);
    if (trailing) {
      // Keep a closing parenthesis that the link itself opened (wikipedia-style URLs).
      let cut = trailing[0];
      if (cut.startsWith(")") && found.includes("(")) cut = cut.slice(1);
      if (cut) found = found.slice(0, found.length - cut.length);
    }
    const href = safeHref(found);
    if (!href) continue;
    if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
    const file = origin ? ownFile(href, origin, aliases) : null;
    const a = el("a", file ? "link own-file" : "link", file ? file.name : found);
    if (file) {
      a.title = found;
      files.push(file);
    }
    // This server's file by another of its names (127.0.0.1 for a page opened on the LAN address): from
    // the address the page came from, which works here.
    a.href = file ? file.href : href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    parent.append(a);
    last = match.index + found.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  return files;
}

// Text with the searched words marked (<mark>), as text nodes.
export function appendMarked(parent, text, query) {
  let last = 0;
  for (const [start, end] of matchRanges(text, query)) {
    if (start > last) parent.append(document.createTextNode(text.slice(last, start)));
    parent.append(el("mark", "", text.slice(start, end)));
    last = end;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

// A shared file's size and type, asked once per address (HEAD), for the link that shows it.
const fileInfo = new Map();

function headOf(href) {
  let known = fileInfo.get(href);
  if (!known) {
    known = fetch(href, { method: "HEAD", credentials: "same-origin", cache: "no-cache" }).then((response) => {
      if (!response.ok) return { gone: response.status === 404 || response.status === 410, size: null };
      const size = Number.parseInt(response.headers.get("Content-Length") || "", 10);
      return { gone: false, size: Number.isFinite(size) ? size : null, type: response.headers.get("Content-Type") || "" };
    }).catch(() => ({ gone: false, size: null }));
    fileInfo.set(href, known);
  }
  return known;
}

// A picture (a thumbnail: click to enlarge), a short video (with its controls) or a file (its name and
// size) under a message that shares one of this server's files.
function mediaFor(file) {
  if (file.kind === "image") {
    const link = el("a", "thumb-link");
    link.href = file.href;
    link.target = "_blank";
    link.rel = "noopener";
    link.title = `${file.name} (click to enlarge)`;
    const img = el("img", "thumb");
    img.src = file.href;
    img.alt = file.name;
    img.loading = "lazy";
    img.decoding = "async";
    img.addEventListener("error", () => link.replaceWith(fileChip(file)), { once: true });
    link.append(img);
    return link;
  }
  if (file.kind === "video") {
    const video = el("video", "clip");
    video.src = file.href;
    video.controls = true;
    video.preload = "metadata";
    video.playsInline = true;
    video.setAttribute("aria-label", file.name);
    return video;
  }
  return fileChip(file);
}

function fileChip(file) {
  const chip = el("a", "file-chip");
  chip.href = file.href;
  chip.target = "_blank";
  chip.rel = "noopener";
  chip.setAttribute("download", file.name);
  const size = el("span", "file-size", "");
  chip.append(el("span", "file-icon", "📄"), el("span", "file-name", file.name), size);
  headOf(file.href).then((info) => {
    if (info.gone) {
      chip.classList.add("gone");
      size.textContent = "no longer available";
    } else if (info.size !== null) size.textContent = formatBytes(info.size);
  });
  return chip;
}

export function nickColor(nick) {
  let hash = 0;
  for (const ch of nick.toLowerCase()) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `nc${hash % 12}`;
}

function two(n) {
  return String(n).padStart(2, "0");
}

function dayKey(date) {
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}`;
}

function dayLabel(date) {
  const today = new Date();
  if (dayKey(date) === dayKey(today)) return "Today";
  const yesterday = new Date(today.getTime() - 86400000);
  if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
  return date.toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

export class View {
  constructor(chat) {
    this.chat = chat;
    this.renderedBuffer = null;
    this.renderedVersion = -1;
    this.shown = []; // the entries drawn, in order: a contiguous run of the buffer's messages
    this.rows = new Map(); // entry -> {row, day, marker}: its line and the separators before it
    this.entryOf = new WeakMap(); // line -> entry
    this.atEnd = true; // the window reaches the buffer's last message: new ones are appended
    this.actionsFor = null; // the entry whose line shows the actions
    this.onSelect = () => {};
    this.onNick = () => {};
    this.onScrollTop = () => {};
    this.onReply = () => {};
    this.onReact = () => {};
    this.onDelete = () => {};
    this.onResult = () => {};
    this.onGap = () => {};
    // A new chat (logging in again) gets a new View: destroy() takes this one's listeners away.
    this.listening = new AbortController();
    const signal = this.listening.signal;
    const messages = $("messages");
    messages.addEventListener("scroll", () => this.onScroll(), { signal });
    // At the top already (or nothing to scroll yet), the wheel up scrolls nothing: still, older lines.
    messages.addEventListener("wheel", (event) => {
      if (event.deltaY < 0 && messages.scrollTop === 0) this.onScroll();
    }, { passive: true, signal });
    messages.addEventListener("mouseover", (event) => {
      this.showActions(event.target.closest(".line"));
      // The full date on a line's time, made when pointed at (toLocaleString for every line costs).
      const time = event.target.closest("time");
      if (time && !time.title) time.title = new Date(time.dateTime).toLocaleString();
    }, { signal });
    messages.addEventListener("click", (event) => this.onClick(event), { signal });
    $("jump-latest").addEventListener("click", () => this.jumpToLatest(), { signal });
    this.actions = this.buildActions();
    this.picker = this.buildPicker();
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.closePicker();
        this.closeLightbox();
      }
    }, { signal });
    $("lightbox").addEventListener("click", (event) => {
      if (!event.target.closest("#lightbox-open")) this.closeLightbox();
    }, { signal });
    document.addEventListener("click", (event) => {
      if (!this.picker.hidden && !event.target.closest("#reaction-picker, .line-actions")) this.closePicker();
    }, { signal });
  }

  destroy() {
    this.listening.abort();
    clearTimeout(this.deleteTimer);
    this.picker.remove();
    this.actions.remove();
    $("messages").replaceChildren();
    $("jump-latest").hidden = true;
  }

  atBottom() {
    const m = $("messages");
    return m.scrollHeight - m.scrollTop - m.clientHeight < 30;
  }

  onScroll() {
    const box = $("messages");
    if (box.scrollTop < 40) {
      if (!this.drawOlder()) this.onScrollTop();
    } else if (!this.atEnd && box.scrollHeight - box.scrollTop - box.clientHeight < 200) this.drawNewer();
    if (this.atEnd && this.atBottom()) {
      this.chat.markSeen();
      if (this.chat.dirty.has("list")) this.renderList();
      this.chat.dirty.delete("list");
    }
    this.updateJump();
  }

  // "↓ Latest" while the reader is away from the end (a screen or more up, or a window of older lines).
  updateJump() {
    const box = $("messages");
    const away = !this.atEnd || box.scrollHeight - box.scrollTop - box.clientHeight > box.clientHeight;
    const jump = $("jump-latest");
    if (jump.hidden === away) jump.hidden = !away;
  }

  jumpToLatest() {
    const buf = this.renderedBuffer;
    if (!buf) return;
    if (!this.atEnd) this.drawWindow(buf, Math.max(0, buf.messages.length - DOM_INITIAL));
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
    this.chat.markSeen();
    this.updateJump();
    $("message-input").focus();
  }

  // -- actions on a line: reply, react, delete ---------------------------------------------------------

  buildActions() {
    const bar = el("div", "line-actions");
    bar.setAttribute("role", "toolbar");
    const button = (name, label, symbol) => {
      const b = el("button", `action ${name}`, symbol);
      b.type = "button";
      b.title = label;
      b.setAttribute("aria-label", label);
      b.dataset.action = name;
      bar.append(b);
      return b;
    };
    button("reply", "Reply", "↩");
    button("react", "React", "☺");
    this.deleteButton = button("delete", "Delete", "✕");
    bar.addEventListener("click", (event) => {
      const action = event.target.closest("button")?.dataset.action;
      const entry = this.actionsFor;
      if (!action || !entry) return;
      event.stopPropagation();
      if (action === "reply") this.onReply(entry);
      else if (action === "delete") {
        // Twice: "✕", then "Delete?" (for a few seconds) deletes for everyone.
        if (this.deleteButton.classList.contains("confirm")) {
          this.resetDelete();
          this.onDelete(entry);
        } else {
          this.deleteButton.classList.add("confirm");
          this.deleteButton.textContent = "Delete?";
          this.deleteButton.setAttribute("aria-label", "Delete for everyone?");
          clearTimeout(this.deleteTimer);
          this.deleteTimer = setTimeout(() => this.resetDelete(), 4000);
        }
      }
      else if (action === "react") this.openPicker(entry, event.target.closest("button"));
    });
    return bar;
  }

  resetDelete() {
    clearTimeout(this.deleteTimer);
    this.deleteButton.classList.remove("confirm");
    this.deleteButton.textContent = "✕";
    this.deleteButton.setAttribute("aria-label", "Delete");
  }

  buildPicker() {
    const picker = el("div", "reaction-picker");
    picker.id = "reaction-picker";
    picker.hidden = true;
    picker.setAttribute("role", "menu");
    for (const emoji of QUICK_REACTIONS) {
      const b = el("button", "pick", emoji);
      b.type = "button";
      b.setAttribute("role", "menuitem");
      b.setAttribute("aria-label", `React ${emoji}`);
      b.addEventListener("click", () => {
        const entry = this.pickerFor;
        this.closePicker();
        if (entry) this.onReact(entry, emoji);
      });
      picker.append(b);
    }
    document.body.append(picker);
    return picker;
  }

  openPicker(entry, anchor) {
    this.pickerFor = entry;
    const box = anchor.getBoundingClientRect();
    this.picker.hidden = false;
    const width = this.picker.offsetWidth;
    this.picker.style.left = `${Math.max(8, Math.min(box.right - width, window.innerWidth - width - 8))}px`;
    this.picker.style.top = `${Math.max(8, box.top - this.picker.offsetHeight - 4)}px`;
    this.picker.querySelector("button").focus();
  }

  closePicker() {
    this.picker.hidden = true;
    this.pickerFor = null;
  }

  // A picture at full size over the page; a click or Escape closes it.
  openLightbox(href, name) {
    const box = $("lightbox");
    $("lightbox-image").src = href;
    $("lightbox-image").alt = name;
    $("lightbox-name").textContent = name;
    $("lightbox-open").href = href;
    box.hidden = false;
    this.lightboxFocus = document.activeElement;
    $("lightbox-close").focus();
  }

  closeLightbox() {
    const box = $("lightbox");
    if (box.hidden) return;
    box.hidden = true;
    $("lightbox-image").removeAttribute("src");
    if (this.lightboxFocus && this.lightboxFocus.focus) this.lightboxFocus.focus();
    this.lightboxFocus = null;
  }

  // Only a line with a msgid can be answered, reacted to or deleted.
  showActions(row) {
    const entry = row ? this.entryOf.get(row) : null;
    if (!entry || !entry.msgid || entry === this.actionsFor) return;
    this.actionsFor = entry;
    this.resetDelete();
    this.deleteButton.hidden = !this.chat.canRedact(this.chat.activeBuffer, entry);
    row.append(this.actions);
  }

  onClick(event) {
    const target = event.target;
    const thumb = target.closest(".thumb-link");
    if (thumb && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
      event.preventDefault();
      this.openLightbox(thumb.href, thumb.querySelector("img").alt);
      return;
    }
    const preview = target.closest(".reply-preview");
    if (preview) {
      this.jumpTo(preview.dataset.msgid);
      return;
    }
    const chip = target.closest(".reaction");
    if (chip) {
      const entry = this.entryOf.get(chip.closest(".line"));
      if (entry && !chip.classList.contains("mine")) this.onReact(entry, chip.dataset.emoji);
      return;
    }
    // A touch screen has no hover: a tap on a line shows its actions.
    if (!target.closest("a, button")) this.showActions(target.closest(".line"));
  }

  // A reply's preview clicked: the original, brought into view and marked for a moment.
  jumpTo(msgid) {
    const buf = this.chat.activeBuffer;
    const entry = buf && this.chat.find(buf, msgid);
    if (!entry) return false;
    if (!this.rows.has(entry)) {
      const at = this.chat.indexOf(buf, entry);
      this.drawWindow(buf, Math.max(0, at - 20));
    }
    const row = this.rows.get(entry).row;
    row.scrollIntoView({ block: "center" });
    row.classList.remove("flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("flash");
    this.updateJump();
    return true;
  }

  // -- drawing -----------------------------------------------------------------------------------------

  render() {
    const chat = this.chat;
    const dirty = chat.dirty;
    chat.dirty = new Set();
    if (dirty.has("header")) this.renderHeader();
    if (dirty.has("nicks")) this.renderNicks();
    if (dirty.has("messages")) {
      this.renderMessages(dirty.has("switched"));
      this.updateJump();
    }
    if (dirty.has("typing")) this.renderTyping();
    if (dirty.has("search")) this.renderSearch();
    if (dirty.has("list") || chat.dirty.has("list")) this.renderList();
    chat.dirty.delete("list");
    this.renderMe();
    // The server buffer counts only for what needs the reader (a service's notice).
    const others = [...chat.buffers.values()].filter((b) => b.kind !== "server" || b.mention);
    const unread = others.reduce((n, b) => n + b.unread, 0);
    const title = unread ? `(${unread}) salotto` : "salotto";
    if (document.title !== title) document.title = title;
    // On a phone the list is folded away: the menu button carries the count.
    const badge = $("menu-badge");
    badge.hidden = !unread;
    badge.textContent = String(unread);
    badge.classList.toggle("mention", others.some((b) => b.mention));
  }

  renderList() {
    const chat = this.chat;
    const list = $("buffer-list");
    const order = { server: 0, channel: 1, query: 2 };
    const buffers = [...chat.buffers.values()].sort(
      (a, b) => order[a.kind] - order[b.kind] || chat.key(a.name).localeCompare(chat.key(b.name)),
    );
    const items = buffers.map((buf) => {
      const li = el("li");
      const button = el("button", `buffer ${buf.kind}`);
      button.type = "button";
      button.dataset.name = buf.name;
      if (chat.active && chat.key(chat.active) === chat.key(buf.name)) button.setAttribute("aria-current", "true");
      if (buf.mention) button.classList.add("mention");
      if (buf.kind === "channel" && !buf.joined) button.classList.add("parted");
      button.append(el("span", "buffer-name", buf.kind === "server" ? chat.network : buf.name));
      if (buf.unread && (buf.kind !== "server" || buf.mention)) {
        const badge = el("span", "badge", String(buf.unread));
        badge.setAttribute("aria-label", `${buf.unread} unread${buf.mention ? ", mentions you" : ""}`);
        button.append(badge);
      }
      button.addEventListener("click", () => this.onSelect(buf.name));
      li.append(button);
      return li;
    });
    list.replaceChildren(...items);
  }

  // Who we are, under the room list: the nickname, the account once logged in (and an "always on" tag
  // when the nick stays while no page is open), and the always-on switch for a logged-in account.
  renderMe() {
    const chat = this.chat;
    const account = chat.account ? `logged in as ${chat.account}` : "not logged in";
    $("me-always-on").hidden = !(chat.account && chat.alwaysOn);
    const box = $("me");
    box.hidden = !chat.nick;
    if ($("me-nick").textContent !== chat.nick) $("me-nick").textContent = chat.nick;
    if ($("me-account").textContent !== account) $("me-account").textContent = account;
    box.classList.toggle("logged-in", !!chat.account);
    $("always-on-field").hidden = !chat.account;
    const input = $("always-on-input");
    if (!chat.alwaysOnPending && input.checked !== !!chat.alwaysOn) input.checked = !!chat.alwaysOn;
    input.disabled = chat.alwaysOnPending;
  }

  renderHeader() {
    const buf = this.chat.activeBuffer;
    const title = $("buffer-title");
    const topic = $("topic");
    if (!buf) {
      title.textContent = "";
      topic.replaceChildren();
      return;
    }
    title.textContent = buf.kind === "server" ? this.chat.network : buf.name;
    topic.replaceChildren();
    if (buf.kind === "channel") appendRichText(topic, buf.topic);
    else if (buf.kind === "query") topic.textContent = "Private conversation";
    else topic.textContent = "Server messages";
    topic.title = topic.textContent;
    $("nicks-button").hidden = buf.kind !== "channel";
    $("nicks-count").textContent = String(buf.members.size);
    $("message-input").placeholder = buf.kind === "server" ? "Type /join #room or /msg nick" : `Message ${buf.name}`;
  }

  renderNicks() {
    const chat = this.chat;
    const buf = chat.activeBuffer;
    const list = $("nick-list");
    if (!buf || buf.kind !== "channel") {
      list.replaceChildren();
      document.body.classList.add("no-nicks");
      return;
    }
    document.body.classList.remove("no-nicks");
    const rank = (prefix) => (prefix ? chat.prefixSymbols.indexOf(prefix[0]) : chat.prefixSymbols.length);
    const members = [...buf.members.entries()].sort(
      (a, b) => rank(a[1]) - rank(b[1]) || chat.fold(a[0]).localeCompare(chat.fold(b[0])),
    );
    list.replaceChildren(...members.map(([nick, prefix]) => {
      const li = el("li");
      const button = el("button", "member");
      button.type = "button";
      button.dataset.nick = nick;
      button.append(el("span", "prefix", prefix ? prefix[0] : ""), el("span", `nick ${nickColor(nick)}`, nick));
      button.addEventListener("click", () => this.onNick(nick));
      li.append(button);
      return li;
    }));
    $("nicks-count").textContent = String(buf.members.size);
    $("nicklist-title").textContent = `${buf.members.size} in ${buf.name}`;
  }

  // The search panel: what was asked, the results (newest first: where, when, who, the text with the words
  // marked), "More results" while there may be older ones.
  renderSearch() {
    const search = this.chat.search;
    const list = $("search-results");
    const status = $("search-status");
    const more = $("search-more");
    if (!search) {
      list.replaceChildren();
      status.textContent = "";
      more.hidden = true;
      return;
    }
    // Another search's results go; this one's are drawn once each, as its pages come.
    if (list.dataset.search !== String(search.id) || list.children.length > search.results.length) {
      list.replaceChildren();
      list.dataset.search = String(search.id);
    }
    const items = search.results.slice(list.children.length).map((result) => {
      const li = el("li");
      const button = el("button", "search-result");
      button.type = "button";
      button.dataset.msgid = result.msgid || "";
      button.dataset.target = result.target;
      const where = el("span", "result-where", result.target);
      const time = el("time", "result-time", resultTime(result.time));
      time.dateTime = result.time.toISOString();
      time.title = result.time.toLocaleString();
      const head = el("span", "result-head");
      head.append(where, time);
      const line = el("span", "result-line");
      if (result.kind === "action") line.append("* ");
      line.append(el("span", `nick ${nickColor(result.nick)}`, result.nick), result.kind === "action" ? " " : ": ");
      const text = el("span", "result-text");
      appendMarked(text, result.text, search.text);
      line.append(text);
      button.append(head, line);
      button.addEventListener("click", () => this.onResult(result));
      li.append(button);
      return li;
    });
    list.append(...items);
    const scope = search.target ? ` in ${search.target}` : "";
    if (search.error) status.textContent = search.error;
    else if (search.loading) status.textContent = "Searching…";
    else if (!search.results.length) status.textContent = `Nothing found for “${search.text}”${scope}.`;
    else status.textContent = `${search.results.length}${search.done ? "" : "+"} found for “${search.text}”${scope}`;
    status.classList.toggle("error", !!search.error);
    more.hidden = search.done || search.loading || !!search.error || !search.results.length;
  }

  renderTyping() {
    const buf = this.chat.activeBuffer;
    const names = buf && buf.kind !== "server" ? this.chat.typers(buf) : [];
    const line = $("typing");
    if (!names.length) line.textContent = "";
    else if (names.length === 1) line.textContent = `${names[0]} is typing…`;
    else if (names.length <= 3) line.textContent = `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
    else line.textContent = "Several people are typing…";
  }

  // A new message is one more line at the end (the others are not touched); a reaction redraws its
  // line, a deletion takes its line out. Everything is redrawn only when another buffer is opened or
  // older history was merged in.
  renderMessages(switched) {
    const buf = this.chat.activeBuffer;
    const box = $("messages");
    if (!buf) {
      box.replaceChildren();
      this.shown = [];
      this.rows.clear();
      this.renderedBuffer = null;
      return;
    }
    if (switched || buf !== this.renderedBuffer || buf.version !== this.renderedVersion) {
      this.redraw(buf, switched || buf !== this.renderedBuffer);
      return;
    }
    const stick = this.atEnd && this.atBottom();
    for (const entry of buf.removed) this.undraw(entry);
    buf.removed = [];
    // Messages the buffer let go (past MAX_MESSAGES) leave the page too.
    const oldest = buf.messages.length ? buf.messages[0].seq : Infinity;
    let gone = 0;
    while (gone < this.shown.length && this.shown[gone].seq < oldest) gone++;
    if (gone) this.dropFirst(gone);
    for (const entry of buf.updated) {
      const drawn = this.rows.get(entry);
      if (!drawn) continue;
      const row = this.line(entry);
      if (this.actionsFor === entry) this.actionsFor = null;
      drawn.row.replaceWith(row);
      drawn.row = row;
    }
    buf.updated.clear();
    // Reading further up while lines keep coming: past DOM_MAX they wait in the buffer (↓ Latest, or
    // scrolling down, brings them).
    if (this.atEnd && !stick && this.shown.length >= DOM_MAX) this.atEnd = false;
    if (this.atEnd) {
      const last = this.shown.at(-1);
      const from = last ? upperBound(buf.messages, last.seq) : 0;
      if (from < buf.messages.length) box.append(this.draw(buf, buf.messages.slice(from), last || null));
    }
    if (stick) {
      // Following the conversation: the window keeps at most DOM_MAX lines.
      if (this.shown.length > DOM_MAX) this.dropFirst(this.shown.length - DOM_MAX);
      box.scrollTop = box.scrollHeight;
      this.chat.markSeen();
    }
  }

  // Draw the buffer anew: the last lines (from "new messages" if there are unread ones), or, after
  // history was merged in, from just above where the reader is, keeping what they look at in place.
  redraw(buf, switched) {
    const box = $("messages");
    let start = Math.max(0, buf.messages.length - DOM_INITIAL);
    let keepOffset = null;
    let stick = true;
    if (!switched && this.shown.length) {
      keepOffset = box.scrollHeight - box.scrollTop;
      stick = this.atEnd && this.atBottom();
      const at = buf.messages.indexOf(this.shown[0]);
      if (at >= 0) start = Math.max(0, at - DOM_CHUNK);
    } else if (buf.newFrom) {
      const at = buf.messages.indexOf(buf.newFrom);
      if (at >= 0) start = Math.min(start, Math.max(0, at - 20));
    }
    this.drawWindow(buf, start);
    if (!switched && keepOffset !== null && !stick) box.scrollTop = box.scrollHeight - keepOffset;
    else if (switched && buf.newFrom && this.rows.get(buf.newFrom)?.marker) {
      this.rows.get(buf.newFrom).marker.scrollIntoView({ block: "start" });
      if (this.atBottom()) this.chat.markSeen();
    } else {
      box.scrollTop = box.scrollHeight;
      this.chat.markSeen();
    }
  }

  // The window from messages[start] to the end (or DOM_MAX lines).
  drawWindow(buf, start) {
    const box = $("messages");
    box.replaceChildren();
    this.shown = [];
    this.rows.clear();
    this.actionsFor = null;
    const entries = buf.messages.slice(start, start + Math.max(DOM_MAX - DOM_CHUNK, DOM_INITIAL));
    box.append(this.draw(buf, entries, null));
    this.renderedBuffer = buf;
    this.renderedVersion = buf.version;
    this.atEnd = start + entries.length >= buf.messages.length;
    buf.updated.clear();
    buf.removed = [];
  }

  // Lines for entries (consecutive messages) following `before` (or first in the window): a fragment,
  // and this.shown/this.rows updated as if it were already in place (at the end, or at the start).
  draw(buf, entries, before, { atStart = false } = {}) {
    const fragment = document.createDocumentFragment();
    let previous = before;
    const drawn = [];
    for (const entry of entries) {
      const record = { row: null, day: null, marker: null };
      if (!previous || dayKey(previous.time) !== dayKey(entry.time)) {
        record.day = el("div", "day", dayLabel(entry.time));
        fragment.append(record.day);
      }
      if (entry === buf.newFrom) {
        record.marker = el("div", "new-marker", "New messages");
        record.marker.setAttribute("role", "separator");
        fragment.append(record.marker);
      }
      record.row = this.line(entry);
      fragment.append(record.row);
      this.rows.set(entry, record);
      drawn.push(entry);
      previous = entry;
    }
    if (atStart) this.shown = drawn.concat(this.shown);
    else this.shown.push(...drawn);
    return fragment;
  }

  // Scrolled to the top of the window: older lines the buffer holds. False when there are none.
  drawOlder() {
    const buf = this.renderedBuffer;
    const first = this.shown[0];
    if (!buf || !first) return false;
    const at = seqIndex(buf.messages, first.seq);
    if (at <= 0) return false;
    const box = $("messages");
    const top = box.scrollTop;
    const height = box.scrollHeight;
    const entries = buf.messages.slice(Math.max(0, at - DOM_CHUNK), at);
    const firstRecord = this.rows.get(first);
    const fragment = this.draw(buf, entries, null, { atStart: true });
    if (firstRecord.day && dayKey(entries.at(-1).time) === dayKey(first.time)) {
      firstRecord.day.remove();
      firstRecord.day = null;
    }
    box.prepend(fragment);
    box.scrollTop = top + box.scrollHeight - height; // what the reader sees stays in place
    if (this.shown.length > DOM_MAX) this.dropLast(this.shown.length - DOM_MAX);
    return true;
  }

  // Scrolled to the bottom of a window that does not reach the end: the next lines.
  drawNewer() {
    const buf = this.renderedBuffer;
    const last = this.shown.at(-1);
    if (!buf || !last) return;
    const from = upperBound(buf.messages, last.seq);
    const entries = buf.messages.slice(from, from + DOM_CHUNK);
    $("messages").append(this.draw(buf, entries, last));
    this.atEnd = from + entries.length >= buf.messages.length;
    if (this.shown.length > DOM_MAX) this.dropFirst(this.shown.length - DOM_MAX, true);
  }

  // The first n lines out of the page; keep: the reader's view stays where it is.
  dropFirst(n, keep = false) {
    const box = $("messages");
    const next = this.shown[n] ? this.rows.get(this.shown[n]) : null;
    // One layout read before the change, none after: the height that goes is the next line's offset.
    const gone = keep && next ? (next.day || next.marker || next.row).offsetTop - box.firstElementChild.offsetTop : 0;
    for (const entry of this.shown.slice(0, n)) this.removeRecord(entry);
    this.shown.splice(0, n);
    this.fixDay(this.shown[0], null);
    if (gone) box.scrollTop -= gone;
  }

  dropLast(n) {
    for (const entry of this.shown.slice(-n)) this.removeRecord(entry);
    this.shown.splice(this.shown.length - n, n);
    this.atEnd = false;
  }

  removeRecord(entry) {
    const record = this.rows.get(entry);
    if (!record) return;
    record.row.remove();
    if (record.day) record.day.remove();
    if (record.marker) record.marker.remove();
    this.rows.delete(entry);
    if (this.actionsFor === entry) this.actionsFor = null;
  }

  // A deleted message's line goes; the line after it keeps its day separator.
  undraw(entry) {
    const at = this.shown.indexOf(entry);
    if (at < 0) return;
    const record = this.rows.get(entry);
    const next = this.shown[at + 1];
    this.removeRecord(entry);
    this.shown.splice(at, 1);
    if (next) this.fixDay(next, at > 0 ? this.shown[at - 1] : null);
    if (record.marker && next && !this.rows.get(next).marker) {
      const nextRecord = this.rows.get(next);
      nextRecord.marker = record.marker;
      nextRecord.row.before(record.marker);
    }
  }

  // entry's line gets a day separator unless `previous` (the line above it) is of the same day.
  fixDay(entry, previous) {
    if (!entry) return;
    const record = this.rows.get(entry);
    if (record.day || (previous && dayKey(previous.time) === dayKey(entry.time))) return;
    record.day = el("div", "day", dayLabel(entry.time));
    (record.marker || record.row).before(record.day);
  }

  line(entry) {
    if (entry.kind === "gap") return this.gapLine(entry);
    const row = el("div", `line ${entry.kind}`);
    this.entryOf.set(row, entry);
    if (entry.self) row.classList.add("self");
    if (entry.highlight) row.classList.add("highlight");
    if (entry.msgid) row.dataset.msgid = entry.msgid;
    const time = el("time", "time", `${two(entry.time.getHours())}:${two(entry.time.getMinutes())}`);
    time.dateTime = entry.time.toISOString();
    row.append(time);
    const body = el("div", "body");
    if (entry.reply) body.append(this.replyPreview(entry.reply));
    const content = el("span", "content");
    if (entry.kind === "privmsg" || entry.kind === "notice") {
      const nick = el("span", `nick ${nickColor(entry.nick)}`, entry.nick);
      content.append(nick, el("span", "sep", entry.kind === "notice" ? " ⁓ " : " "));
    } else if (entry.kind === "action") {
      content.append(el("span", "sep", "* "), el("span", `nick ${nickColor(entry.nick)}`, entry.nick), " ");
    }
    const text = el("span", "text");
    const alias = filehostOrigin(this.chat.isupport.get("soju.im/FILEHOST"), location.href);
    const files = appendRichText(text, entry.text, location.origin, alias ? [alias] : []);
    content.append(text);
    body.append(content);
    if (files.length) {
      const media = el("div", "media");
      for (const file of files.slice(0, MAX_MEDIA_PER_LINE)) media.append(mediaFor(file));
      body.append(media);
    }
    if (entry.reactions && entry.reactions.size) body.append(this.reactions(entry));
    row.append(body);
    return row;
  }

  // Between a message loaded from far back (a search result) and the ones loaded before: not loaded yet.
  gapLine(entry) {
    const row = el("div", "line gap");
    this.entryOf.set(row, entry);
    const label = "⋯ Messages between these are not loaded yet: show them";
    const button = el("button", "gap-button", label);
    button.type = "button";
    button.addEventListener("click", () => {
      if (!this.onGap(entry)) return; // not asked (offline, or history loading): clickable again later
      button.disabled = true;
      button.textContent = "Loading…";
    });
    row.append(button);
    return row;
  }

  replyPreview(msgid) {
    const buf = this.chat.activeBuffer;
    const original = buf && this.chat.find(buf, msgid);
    const preview = el("button", "reply-preview");
    preview.type = "button";
    preview.dataset.msgid = msgid;
    if (original) {
      const text = original.text.length > PREVIEW_CHARS ? `${original.text.slice(0, PREVIEW_CHARS)}…` : original.text;
      preview.append(el("span", `nick ${nickColor(original.nick)}`, original.nick), " ", el("span", "quoted", text));
      preview.title = "Show the message this answers";
    } else {
      preview.append(el("span", "quoted", "a message not shown here"));
      preview.disabled = true;
    }
    return preview;
  }

  reactions(entry) {
    const box = el("div", "reactions");
    for (const [emoji, who] of entry.reactions) {
      const names = [...who];
      const chip = el("button", "reaction");
      chip.type = "button";
      chip.dataset.emoji = emoji;
      if (names.some((n) => this.chat.isMe(n))) chip.classList.add("mine");
      chip.append(el("span", "emoji", emoji), el("span", "count", String(names.length)));
      chip.title = names.join(", ");
      chip.setAttribute("aria-label", `${emoji} from ${names.join(", ")}`);
      box.append(chip);
    }
    return box;
  }

  status(text, kind = "") {
    const banner = $("connection-banner");
    banner.textContent = text;
    banner.className = kind;
    banner.hidden = !text;
  }
}

// A result's time: the hour today, the day and hour this year, the full date before.
function resultTime(date) {
  const now = new Date();
  const hour = `${two(date.getHours())}:${two(date.getMinutes())}`;
  if (dayKey(date) === dayKey(now)) return hour;
  const sameYear = date.getFullYear() === now.getFullYear();
  const day = date.toLocaleDateString([], sameYear ? { day: "numeric", month: "short" } : { day: "numeric", month: "short", year: "numeric" });
  return `${day} ${hour}`;
}

// The index of the first message after seq.
function upperBound(messages, seq) {
  let lo = 0;
  let hi = messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (messages[mid].seq <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export { SERVER_BUFFER };
