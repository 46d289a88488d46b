// Drawing the chat with DOM calls only. Text from the network goes in through textContent and
// text nodes, never through innerHTML: a message is shown as the characters it contains.

import { SERVER_BUFFER } from "./model.js";

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

export function appendRichText(parent, text) {
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
    const a = el("a", "link", found);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    parent.append(a);
    last = match.index + found.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
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
    this.renderedCount = 0;
    this.lastDay = null;
    this.onSelect = () => {};
    this.onNick = () => {};
    this.onScrollTop = () => {};
    const messages = $("messages");
    messages.addEventListener("scroll", () => {
      if (messages.scrollTop < 40) this.onScrollTop();
      if (this.atBottom()) chat.markSeen();
    });
  }

  atBottom() {
    const m = $("messages");
    return m.scrollHeight - m.scrollTop - m.clientHeight < 30;
  }

  render() {
    const chat = this.chat;
    const dirty = chat.dirty;
    chat.dirty = new Set();
    if (dirty.has("list")) this.renderList();
    if (dirty.has("header")) this.renderHeader();
    if (dirty.has("nicks")) this.renderNicks();
    if (dirty.has("messages")) this.renderMessages(dirty.has("switched"));
    if (dirty.has("typing")) this.renderTyping();
    this.renderMe();
    // The server buffer counts only for what needs the reader (a service's notice).
    const others = [...chat.buffers.values()].filter((b) => b.kind !== "server" || b.mention);
    const unread = others.reduce((n, b) => n + b.unread, 0);
    document.title = unread ? `(${unread}) salotto` : "salotto";
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

  // Who we are, under the room list: the nickname, and the account once logged in.
  renderMe() {
    const chat = this.chat;
    const account = chat.account ? `logged in as ${chat.account}` : "not logged in";
    const box = $("me");
    box.hidden = !chat.nick;
    if ($("me-nick").textContent !== chat.nick) $("me-nick").textContent = chat.nick;
    if ($("me-account").textContent !== account) $("me-account").textContent = account;
    box.classList.toggle("logged-in", !!chat.account);
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

  renderTyping() {
    const buf = this.chat.activeBuffer;
    const names = buf && buf.kind !== "server" ? this.chat.typers(buf) : [];
    const line = $("typing");
    if (!names.length) line.textContent = "";
    else if (names.length === 1) line.textContent = `${names[0]} is typing…`;
    else if (names.length <= 3) line.textContent = `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
    else line.textContent = "Several people are typing…";
  }

  renderMessages(switched) {
    const buf = this.chat.activeBuffer;
    const box = $("messages");
    if (!buf) {
      box.replaceChildren();
      return;
    }
    const stick = switched || this.atBottom();
    const full = switched || buf !== this.renderedBuffer || buf.version !== this.renderedVersion
      || buf.messages.length < this.renderedCount;
    let from = this.renderedCount;
    let keepOffset = null;
    if (full) {
      if (!switched && buf === this.renderedBuffer) keepOffset = box.scrollHeight - box.scrollTop;
      box.replaceChildren();
      this.lastDay = null;
      from = 0;
    }
    const fragment = document.createDocumentFragment();
    for (const entry of buf.messages.slice(from)) {
      const day = dayKey(entry.time);
      if (day !== this.lastDay) {
        fragment.append(el("div", "day", dayLabel(entry.time)));
        this.lastDay = day;
      }
      fragment.append(this.line(entry));
    }
    box.append(fragment);
    this.renderedBuffer = buf;
    this.renderedVersion = buf.version;
    this.renderedCount = buf.messages.length;
    if (stick) box.scrollTop = box.scrollHeight;
    else if (keepOffset !== null) box.scrollTop = box.scrollHeight - keepOffset;
    if (stick) this.chat.markSeen();
  }

  line(entry) {
    const row = el("div", `line ${entry.kind}`);
    if (entry.self) row.classList.add("self");
    if (entry.highlight) row.classList.add("highlight");
    const time = el("time", "time", `${two(entry.time.getHours())}:${two(entry.time.getMinutes())}`);
    time.dateTime = entry.time.toISOString();
    time.title = entry.time.toLocaleString();
    row.append(time);
    const body = el("span", "body");
    if (entry.kind === "privmsg" || entry.kind === "notice") {
      const nick = el("span", `nick ${nickColor(entry.nick)}`, entry.nick);
      body.append(nick, el("span", "sep", entry.kind === "notice" ? " ⁓ " : " "));
    } else if (entry.kind === "action") {
      body.append(el("span", "sep", "* "), el("span", `nick ${nickColor(entry.nick)}`, entry.nick), " ");
    }
    const text = el("span", "text");
    appendRichText(text, entry.text);
    body.append(text);
    row.append(body);
    return row;
  }

  status(text, kind = "") {
    const banner = $("connection-banner");
    banner.textContent = text;
    banner.className = kind;
    banner.hidden = !text;
  }
}

export { SERVER_BUFFER };
