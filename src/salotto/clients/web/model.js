// What the page knows: buffers (the server, channels, private conversations), their messages,
// members, topics, unread counts, mentions, read markers, replies, reactions and who is typing. No DOM
// here (node's test runner loads it as it is: tests/web/js/): the view draws this.

import { casefolder, nickOf, stripFormatting } from "./irc.js";

export const SERVER_BUFFER = "*server*"; // '*' is in no nick or channel name
// Messages kept per buffer; past that the oldest go (the view keeps fewer of them in the page).
export const MAX_MESSAGES = 10000;
// A reaction is an emoji or a short word: longer ones are not shown.
export const MAX_REACTION_CHARS = 16;
const TYPING_ACTIVE_MS = 6000; // IRCv3 +typing: "active" holds for 6 seconds unless renewed
// The server's services: their notices (nick protection, login answers) belong in the server buffer.
const SERVICES = new Set(["nickserv", "chanserv"]);
// What follows these words in a message to NickServ is a password: never shown on the page.
const SECRET_COMMAND = /^(\s*(?:IDENTIFY|REGISTER|DROP|GHOST)\b)(.*)$/is;
// NickServ's words for the account's always-on setting: INFO's "Always-on: on." and SET's
// "Always-on is off for alice: ...".
const ALWAYS_ON_STATE = /^Always-on(?::| is) (on|off)\b/;

export function isService(nick) {
  return SERVICES.has(nick.toLowerCase());
}

// The text of a message as the page shows it: "IDENTIFY ••••••" for a password sent to a service.
export function hideSecrets(target, text) {
  const secret = isService(target) ? SECRET_COMMAND.exec(text) : null;
  return secret && secret[2].trim() ? `${secret[1]} ••••••` : text;
}

export class Buffer {
  constructor(name, kind) {
    this.name = name;
    this.kind = kind; // "server" | "channel" | "query"
    this.messages = []; // in time order; each entry has a seq, increasing along the array
    this.nextSeq = 0;
    this.byId = new Map(); // msgid -> entry, for the messages here (dedup, replies, reactions, REDACT)
    this.reactionIds = new Map(); // msgid of a reaction -> {entry, emoji, nick}
    this.pendingReactions = new Map(); // msgid not here (yet) -> reactions to it, applied when it comes
    this.updated = new Set(); // entries changed in place since the view last drew (reactions)
    this.removed = []; // entries taken out since the view last drew (REDACT)
    this.unread = 0;
    this.readUntil = null; // Date: read up to here (MARKREAD from the server, or seen here)
    this.newFrom = null; // the first entry that was unread when the buffer was opened: "new messages"
    this.mention = false;
    this.topic = "";
    this.members = new Map(); // nick -> prefix symbols, highest first
    this.pendingNames = null;
    this.typing = new Map(); // nick -> expiry (ms since epoch)
    this.joined = false;
    this.historyLoading = false;
    this.historyDone = false;
    this.olderPending = false; // the history request on its way asks for older messages (scroll-back)
    this.aroundPending = null; // a CHATHISTORY AROUND is on its way (a search result to show)
    this.gapFilling = null; // the gap whose messages a CHATHISTORY BETWEEN is loading
    this.version = 0; // bumped when messages are rearranged (older history merged in): redraw all
  }
}

export class Chat {
  constructor() {
    this.fold = casefolder("rfc1459");
    this.buffers = new Map();
    this.active = null;
    this.nick = "";
    this.account = null; // the account we are logged in to (900), or null
    this.alwaysOn = null; // the account's always-on setting as NickServ last said (null: not known)
    this.alwaysOnPending = false; // a SET ALWAYS-ON is on its way
    this.quietLabels = new Map(); // label -> "info" | "set": NickServ answers read here, not shown
    this.privateTargets = []; // private conversations CHATHISTORY TARGETS listed: main.js opens them
    this.markerAsked = new Set(); // query keys whose read marker we asked for (MARKREAD <nick>)
    this.network = "salotto";
    this.chantypes = "#&";
    this.prefixModes = "ov";
    this.prefixSymbols = "@+";
    this.chanmodes = ["beI", "k", "l", "imnst"];
    this.caps = new Set();
    this.batches = new Map();
    this.switchOnJoin = new Set(); // channels whose JOIN should bring them to the front
    this.hidden = false; // page not visible: even the active buffer collects unread
    this.outbox = []; // [command, params, tags] the model wants sent (MARKREAD): main.js sends them
    this.notifications = []; // {buffer, entry}: mentions and private messages while the page is hidden
    this.dirty = new Set(["list", "header", "nicks", "messages", "typing", "search"]);
    this.isupport = new Map(); // ISUPPORT tokens as the server sent them (soju.im/FILEHOST, VAPID, ...)
    this.search = null; // the search under way or shown (newSearch), its results newest first
    this.pushReplies = []; // WEBPUSH echoes and FAIL WEBPUSH: main.js reads them
    this.buffer(SERVER_BUFFER, "server");
  }

  key(name) {
    return name === SERVER_BUFFER ? name : this.fold(name);
  }

  isChannel(name) {
    return !!name && this.chantypes.includes(name[0]);
  }

  isMe(nick) {
    return !!this.nick && this.fold(nick) === this.fold(this.nick);
  }

  buffer(name, kind = null) {
    const key = this.key(name);
    let found = this.buffers.get(key);
    if (!found && kind) {
      found = new Buffer(name, kind);
      this.buffers.set(key, found);
      this.dirty.add("list");
    }
    return found || null;
  }

  get activeBuffer() {
    return this.active ? this.buffers.get(this.key(this.active)) || null : null;
  }

  setActive(name) {
    const buf = this.buffer(name);
    if (!buf) return;
    this.active = buf.name;
    buf.newFrom = buf.unread ? firstUnread(buf) : null;
    buf.unread = 0;
    buf.mention = false;
    this.dirty = new Set(["list", "header", "nicks", "messages", "typing", "switched"]);
    if (!this.hidden) this.markRead(buf);
  }

  closeBuffer(name) {
    const key = this.key(name);
    if (key === SERVER_BUFFER) return;
    this.buffers.delete(key);
    if (this.active && this.key(this.active) === key) {
      const next = [...this.buffers.values()].find((b) => b.kind === "channel") || this.buffers.get(SERVER_BUFFER);
      this.setActive(next.name);
    }
    this.dirty.add("list");
  }

  // The active buffer is on screen, scrolled to its end: what it holds is read.
  markSeen() {
    const buf = this.activeBuffer;
    if (!buf || this.hidden) return;
    if (buf.unread || buf.mention) {
      buf.unread = 0;
      buf.mention = false;
      this.dirty.add("list");
    }
    this.markRead(buf);
  }

  // draft/read-marker: tell the server (and so our other devices) how far we read, when it moved on.
  markRead(buf) {
    if (buf.kind === "server") return;
    const last = lastMessage(buf);
    if (!last || (buf.readUntil && last.time <= buf.readUntil)) return;
    buf.readUntil = last.time;
    if (this.caps.has("draft/read-marker") && this.account) {
      this.outbox.push(["MARKREAD", [buf.name, `timestamp=${last.time.toISOString()}`]]);
    }
  }

  // MARKREAD <target> timestamp=...: read up to there on another device (or as we said before).
  applyReadMarker(buf, when) {
    if (!when || Number.isNaN(when.getTime()) || (buf.readUntil && when <= buf.readUntil)) return;
    buf.readUntil = when;
    const unread = [];
    for (let i = buf.messages.length - 1; i >= 0 && buf.messages[i].time > when; i--) {
      if (buf.messages[i].counts) unread.push(buf.messages[i]);
    }
    if (unread.length !== buf.unread || (buf.mention && !unread.length)) {
      buf.unread = Math.min(buf.unread, unread.length);
      if (!buf.unread) buf.mention = false;
      this.dirty.add("list");
    }
  }

  // A reply's preview, a REDACT, a reaction: the message with this msgid, if this buffer holds it.
  find(buf, msgid) {
    return (msgid && buf.byId.get(msgid)) || null;
  }

  // Our own messages, and anyone's for a channel operator, when the server takes REDACT.
  canRedact(buf, entry) {
    if (!buf || !entry || !entry.msgid || !this.caps.has("draft/message-redaction")) return false;
    if (entry.self) return true;
    if (buf.kind !== "channel") return false;
    const me = findMember(this, buf, this.nick);
    const prefix = me === null ? "" : buf.members.get(me);
    const op = this.prefixSymbols.indexOf("@");
    return !!prefix && op >= 0 && this.prefixSymbols.indexOf(prefix[0]) <= op;
  }

  indexOf(buf, entry) {
    return seqIndex(buf.messages, entry.seq);
  }

  // -- adding lines ------------------------------------------------------------------------------

  mentions(text) {
    if (!this.nick) return false;
    const escaped = this.nick.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return new RegExp(`(^|[^\\w\\[\\]\\\\^{}|\`-])${escaped}($|[^\\w\\[\\]\\\\^{}|\`-])`, "i").test(text);
  }

  isActive(buf) {
    return !!this.active && this.key(this.active) === this.key(buf.name);
  }

  // A new line at the end of buf (the view appends it alone). Returns false for a msgid seen already.
  add(buf, entry, { counts = false, live = true } = {}) {
    if (entry.msgid) {
      if (buf.byId.has(entry.msgid)) return false;
      buf.byId.set(entry.msgid, entry);
    }
    entry.seq = buf.nextSeq++;
    entry.counts = counts && !entry.self;
    buf.messages.push(entry);
    if (entry.msgid) this.applyPending(buf, entry);
    if (buf.messages.length > MAX_MESSAGES) {
      // The oldest go; the view drops their lines by seq, no redraw.
      const dropped = buf.messages.splice(0, buf.messages.length - MAX_MESSAGES);
      for (const old of dropped) if (old.msgid) buf.byId.delete(old.msgid);
    }
    const isActive = this.isActive(buf);
    if (entry.counts && (!isActive || this.hidden)) {
      buf.unread++;
      if (entry.highlight || buf.kind === "query") {
        buf.mention = true;
        if (live && this.hidden) this.notifications.push({ buffer: buf.name, entry });
      }
      this.dirty.add("list");
    }
    if (isActive) this.dirty.add("messages");
    return true;
  }

  // -- reactions and deletions -------------------------------------------------------------------

  // +draft/react on a TAGMSG: reaction {msgid (the TAGMSG's own), emoji, nick, to (the message's msgid)}.
  react(buf, reaction) {
    const { msgid, emoji, nick, to } = reaction;
    if (!emoji || [...emoji].length > MAX_REACTION_CHARS || !to) return;
    if (msgid && buf.reactionIds.has(msgid)) return;
    const entry = buf.byId.get(to);
    if (!entry) {
      // Its message is older than what is loaded (or comes later in a batch): kept until it comes.
      const waiting = buf.pendingReactions.get(to) || [];
      if (!waiting.some((r) => r.msgid && r.msgid === msgid)) waiting.push(reaction);
      buf.pendingReactions.set(to, waiting);
      return;
    }
    if (!entry.reactions) entry.reactions = new Map();
    let who = entry.reactions.get(emoji);
    if (!who) {
      who = new Set();
      entry.reactions.set(emoji, who);
    }
    if (msgid) buf.reactionIds.set(msgid, { entry, emoji, nick });
    if ([...who].some((n) => this.fold(n) === this.fold(nick))) return;
    who.add(nick);
    this.changed(buf, entry);
  }

  applyPending(buf, entry) {
    const waiting = buf.pendingReactions.get(entry.msgid);
    if (!waiting) return;
    buf.pendingReactions.delete(entry.msgid);
    for (const reaction of waiting) this.react(buf, reaction);
  }

  changed(buf, entry) {
    buf.updated.add(entry);
    if (this.isActive(buf)) this.dirty.add("messages");
  }

  // REDACT <target> <msgid>: the message goes (and replies to it say so), or the reaction is taken back.
  redact(buf, msgid) {
    const entry = buf.byId.get(msgid);
    if (entry) {
      buf.byId.delete(msgid);
      const at = seqIndex(buf.messages, entry.seq);
      if (at >= 0) buf.messages.splice(at, 1);
      buf.removed.push(entry);
      if (buf.newFrom === entry) buf.newFrom = at >= 0 && at < buf.messages.length ? buf.messages[at] : null;
      const isActive = this.isActive(buf);
      if (entry.counts && buf.unread && (!isActive || this.hidden) && entry.time > (buf.readUntil || 0)) {
        buf.unread--;
        this.dirty.add("list");
      }
      for (const other of buf.messages) if (other.reply === msgid) this.changed(buf, other);
      if (isActive) this.dirty.add("messages");
      return true;
    }
    const reaction = buf.reactionIds.get(msgid);
    if (reaction) {
      buf.reactionIds.delete(msgid);
      const who = reaction.entry.reactions && reaction.entry.reactions.get(reaction.emoji);
      if (who) {
        for (const n of who) if (this.fold(n) === this.fold(reaction.nick)) who.delete(n);
        if (!who.size) reaction.entry.reactions.delete(reaction.emoji);
      }
      this.changed(buf, reaction.entry);
      return true;
    }
    for (const [to, waiting] of buf.pendingReactions) {
      const left = waiting.filter((r) => r.msgid !== msgid);
      if (left.length !== waiting.length) buf.pendingReactions.set(to, left);
    }
    return false;
  }

  info(buf, text, kind = "info", time = new Date()) {
    this.add(buf, { kind, time, nick: "", text });
  }

  error(text) {
    this.info(this.activeBuffer || this.buffer(SERVER_BUFFER), text, "error");
  }

  // -- incoming messages -------------------------------------------------------------------------

  handle(msg) {
    const batchRef = msg.tags.batch;
    if (batchRef && this.batches.has(batchRef) && msg.command !== "BATCH") {
      this.batches.get(batchRef).messages.push(msg);
      return;
    }
    // A one-line answer (or the empty ACK) to what we asked NickServ quietly.
    if (msg.tags.label && msg.command !== "BATCH" && this.quietLabels.has(msg.tags.label)) {
      this.quietAnswer(msg.tags.label, [msg]);
      return;
    }
    const handler = HANDLERS[msg.command];
    if (handler) handler(this, msg);
    else if (/^[45]\d\d$/.test(msg.command)) this.error(msg.params.slice(1).join(" "));
    else if (/^\d\d\d$/.test(msg.command)) this.info(this.buffer(SERVER_BUFFER), msg.params.slice(1).join(" "));
  }

  // -- the account's always-on setting (NickServ SET ALWAYS-ON / INFO) ---------------------------

  // A NickServ notice: the always-on state, when it says it. True when it did.
  noteServiceNotice(text) {
    const match = ALWAYS_ON_STATE.exec(text);
    if (!match) return false;
    this.alwaysOn = match[1] === "on";
    this.alwaysOnPending = false;
    this.dirty.add("me");
    return true;
  }

  // The answer to a labelled request of ours (labeled-response): read, not shown; what a SET got
  // instead of a state (a refusal: the server's limit) is shown as an error.
  quietAnswer(label, messages) {
    const kind = this.quietLabels.get(label);
    this.quietLabels.delete(label);
    let stated = false;
    for (const msg of messages) {
      if (msg.command !== "NOTICE" || !isService(nickOf(msg.source) || "")) continue;
      const text = msg.params[1] || "";
      if (this.noteServiceNotice(text)) stated = true;
      else if (kind === "set") this.error(text);
    }
    if (kind === "set" && !stated) {
      this.alwaysOnPending = false;
      this.dirty.add("me");
    }
  }

  timeOf(msg) {
    const stamp = msg.tags.time ? new Date(msg.tags.time) : null;
    return stamp && !Number.isNaN(stamp.getTime()) ? stamp : new Date();
  }

  // The buffer a PRIVMSG, NOTICE or TAGMSG belongs in; created when create is true.
  targetBuffer(msg, create) {
    let target = msg.params[0] || "";
    const from = nickOf(msg.source);
    while (target && this.prefixSymbols.includes(target[0]) && this.isChannel(target.slice(1))) target = target.slice(1);
    if (this.isChannel(target)) return this.buffer(target, create ? "channel" : null);
    if (!msg.source || !msg.source.includes("!") || target === "*") return this.buffer(SERVER_BUFFER);
    const other = this.isMe(from) ? target : from;
    return this.buffer(other, create ? "query" : null);
  }

  onText(msg, { history = false } = {}) {
    const from = nickOf(msg.source);
    const notice = msg.command === "NOTICE";
    let text = msg.params[1] || "";
    let kind = notice ? "notice" : "privmsg";
    if (text.startsWith("\x01")) {
      const body = text.replace(/^\x01|\x01$/g, "");
      if (!body.toUpperCase().startsWith("ACTION")) return null; // other CTCP: not shown
      kind = "action";
      text = body.slice(7);
    }
    const self = this.isMe(from);
    // A service's notice goes to the server buffer (unless a conversation with it is open), marked:
    // "this nick is registered, log in or be renamed" must not go unseen.
    const fromService = notice && !self && !this.isChannel(msg.params[0] || "") && isService(from) && !this.buffer(from);
    const buf = fromService ? this.buffer(SERVER_BUFFER) : this.targetBuffer(msg, true);
    buf.typing.delete(from);
    if (buf.kind !== "server") this.dirty.add("typing");
    if (self) text = hideSecrets(msg.params[0] || "", text);
    const entry = {
      kind, time: this.timeOf(msg), nick: from, text: stripFormatting(text), msgid: msg.tags.msgid || null,
      self, highlight: fromService || (!self && this.mentions(text)), reply: msg.tags["+draft/reply"] || null,
      reactions: null,
    };
    const counts = !notice || buf.kind === "query" || fromService;
    if (history) return { buf, entry, counts };
    this.add(buf, entry, { counts });
    return null;
  }

  reactionOf(msg) {
    const emoji = msg.tags["+draft/react"];
    const to = msg.tags["+draft/reply"];
    if (!emoji || !to) return null;
    return { msgid: msg.tags.msgid || null, emoji, nick: nickOf(msg.source), to };
  }

  onTagmsg(msg) {
    const reaction = this.reactionOf(msg);
    if (reaction) {
      const buf = this.targetBuffer(msg, false);
      if (buf && buf.kind !== "server") this.react(buf, reaction);
      return;
    }
    const state = msg.tags["+typing"] ?? msg.tags["+draft/typing"];
    const from = nickOf(msg.source);
    if (state === undefined || this.isMe(from)) return;
    const buf = this.targetBuffer(msg, false);
    if (!buf || buf.kind === "server") return;
    if (state === "active") buf.typing.set(from, Date.now() + TYPING_ACTIVE_MS);
    else buf.typing.delete(from);
    this.dirty.add("typing");
  }

  typers(buf) {
    const now = Date.now();
    const names = [];
    for (const [nick, until] of buf.typing) {
      if (until < now) buf.typing.delete(nick);
      else names.push(nick);
    }
    return names;
  }

  memberChanged(buf) {
    if (this.active && this.key(this.active) === this.key(buf.name)) this.dirty.add("nicks").add("header");
  }

  channelsWith(nick) {
    return [...this.buffers.values()].filter((b) => b.kind === "channel" && findMember(this, b, nick) !== null);
  }

  // A gap's messages are on their way (or came): its line goes.
  removeGap(buf, gap) {
    const at = seqIndex(buf.messages, gap.seq);
    if (at >= 0 && buf.messages[at] === gap) {
      buf.messages.splice(at, 1);
      buf.removed.push(gap);
      if (this.isActive(buf)) this.dirty.add("messages");
    }
  }

  // -- searching (soju.im/search) -------------------------------------------------------------------

  // A new search: {text, target (null: everywhere), results (newest first), loading, done, error}.
  newSearch(text, target, limit) {
    const previous = this.search;
    const id = previous ? previous.id + 1 : 1;
    // The answer to a search still on its way comes first, and is not this one's (a SEARCH has no label).
    const skip = previous && previous.loading ? previous.skip + 1 : 0;
    this.search = { id, text, target, limit, results: [], ids: new Set(), loading: true, done: false, error: "", pages: 0, skip };
    this.dirty.add("search");
    return this.search;
  }

  // The connection is gone: no history request is on its way any more (the new connection's first
  // answers, a room's latest messages, are not theirs). A gap whose messages were asked for is drawn
  // again, to be asked for again.
  historyLost() {
    for (const buf of this.buffers.values()) {
      if (buf.gapFilling) {
        buf.version++;
        if (this.isActive(buf)) this.dirty.add("messages");
      }
      buf.historyLoading = false;
      buf.aroundPending = null;
      buf.gapFilling = null;
      buf.olderPending = false;
    }
  }

  // The connection is gone: the answers still owed for searches will not come. A first page asked says
  // so (search again); a "More results" asked is offered again.
  searchLost() {
    const search = this.search;
    if (!search || (!search.loading && !search.skip)) return;
    search.skip = 0;
    if (search.loading) {
      search.loading = false;
      if (!search.pages) search.error = "The connection was lost before the answer came: search again.";
    }
    this.dirty.add("search");
  }

  // Where a message found (or pushed) belongs: the channel, or the other person of a private one.
  conversationOf(msg) {
    let target = msg.params[0] || "";
    while (target && this.prefixSymbols.includes(target[0]) && this.isChannel(target.slice(1))) target = target.slice(1);
    if (this.isChannel(target)) return target;
    const from = nickOf(msg.source);
    return this.isMe(from) ? target : from;
  }

  // A soju.im/search batch: one page of results (in time order), older than those shown. Each result
  // once (by msgid); fewer new ones than asked for: no more pages.
  searchResults(messages) {
    const search = this.search;
    if (!search) return;
    if (search.skip) {
      search.skip--;
      return;
    }
    const found = [];
    for (const msg of messages) {
      if ((msg.command !== "PRIVMSG" && msg.command !== "NOTICE") || msg.params.length < 2) continue;
      const msgid = msg.tags.msgid || null;
      if (msgid && search.ids.has(msgid)) continue;
      let text = msg.params[1];
      let kind = msg.command === "NOTICE" ? "notice" : "privmsg";
      if (text.startsWith("\x01")) {
        const body = text.replace(/^\x01|\x01$/g, "");
        if (!body.toUpperCase().startsWith("ACTION")) continue;
        kind = "action";
        text = body.slice(7);
      }
      if (msgid) search.ids.add(msgid);
      const nick = nickOf(msg.source);
      found.push({ msgid, time: this.timeOf(msg), nick, target: this.conversationOf(msg), kind,
        text: stripFormatting(text), self: this.isMe(nick) });
    }
    // Newest first; the server's order (ascending) decides between messages of the same millisecond.
    found.reverse().sort((a, b) => b.time - a.time);
    search.results.push(...found);
    search.loading = false;
    search.pages++;
    search.done = messages.length < search.limit || !found.length;
    this.dirty.add("search");
  }

  // Older messages from a chathistory batch: merged in time order, duplicates (by msgid) dropped;
  // the reactions in it applied (to messages in it or already here). Newer than the read marker and
  // not ours: unread.
  mergeHistory(target, messages) {
    const buf = this.buffer(target, this.isChannel(target) ? "channel" : "query");
    buf.historyLoading = false;
    // A window around a message (a search result), or the messages of a gap: loaded apart from the rest.
    const around = buf.aroundPending;
    const gap = buf.gapFilling;
    const older = buf.olderPending;
    buf.aroundPending = null;
    buf.gapFilling = null;
    buf.olderPending = false;
    if (gap) this.removeGap(buf, gap);
    let overlap = false;
    const entries = [];
    const reactions = [];
    for (const msg of messages) {
      if (msg.command === "TAGMSG") {
        const reaction = this.reactionOf(msg);
        if (reaction) reactions.push(reaction);
        continue;
      }
      if (msg.command !== "PRIVMSG" && msg.command !== "NOTICE") continue;
      const found = this.onText(msg, { history: true });
      if (found && found.entry.msgid && buf.byId.has(found.entry.msgid)) overlap = true;
      if (!found || (found.entry.msgid && buf.byId.has(found.entry.msgid))) continue;
      found.entry.counts = found.counts && !found.entry.self;
      if (found.entry.msgid) buf.byId.set(found.entry.msgid, found.entry);
      entries.push(found.entry);
    }
    if (!entries.length && !reactions.length) {
      // Nothing older than what the page holds; but latest messages all held already (joined again
      // after a reconnection, nothing said meanwhile) say nothing about older ones.
      if (!around && !gap && (older || !overlap)) buf.historyDone = true;
      if (this.isActive(buf)) this.dirty.add("messages");
      return;
    }
    if (entries.length) {
      // Into a gap: right after the message before it (times alone cannot order messages of the same
      // millisecond); otherwise by time, the loaded ones first among equals (they are the older ones).
      const after = gap ? buf.messages.indexOf(gap.from) : -1;
      const merged = after >= 0
        ? [...buf.messages.slice(0, after + 1), ...entries, ...buf.messages.slice(after + 1)]
        : [...entries, ...buf.messages].sort((a, b) => a.time - b.time);
      // Loaded apart from the rest (and not reaching it): what lies between is a gap, shown as such.
      if ((around && !overlap) || (gap && entries.length >= gap.limit)) {
        const newest = entries.reduce((a, b) => (b.time >= a.time ? b : a));
        const at = merged.indexOf(newest);
        const next = merged[at + 1];
        if (next && !entries.includes(next) && next.kind !== "gap") {
          merged.splice(at + 1, 0, { kind: "gap", time: newest.time, nick: "", text: "", msgid: null, reactions: null,
            counts: false, from: newest, to: next });
        }
      }
      for (const old of merged.splice(0, Math.max(0, merged.length - MAX_MESSAGES))) {
        if (old.msgid) buf.byId.delete(old.msgid);
      }
      merged.forEach((e, i) => (e.seq = i));
      buf.messages = merged;
      buf.nextSeq = merged.length;
      buf.version++;
      for (const e of entries) if (e.msgid) this.applyPending(buf, e);
      const unseen = !this.isActive(buf) || this.hidden;
      const fresh = buf.readUntil ? entries.filter((e) => e.counts && e.time > buf.readUntil) : [];
      if (unseen && fresh.length) {
        buf.unread += fresh.length;
        if (buf.kind === "query" || fresh.some((e) => e.highlight)) buf.mention = true;
        this.dirty.add("list");
      } else if (fresh.length && !buf.newFrom) {
        // Open already (the room we land in): the line goes above what came since we last read.
        buf.newFrom = fresh[0];
      }
    } else buf.historyDone = true;
    for (const reaction of reactions) this.react(buf, reaction);
    if (this.isActive(buf)) this.dirty.add("messages");
  }
}

// The index of the entry with this seq (messages are in seq order), or -1.
export function seqIndex(messages, seq) {
  let lo = 0;
  let hi = messages.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = messages[mid].seq;
    if (at === seq) return mid;
    if (at < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

// The first of the unread messages (those that count, from the end).
function firstUnread(buf) {
  let left = buf.unread;
  for (let i = buf.messages.length - 1; i >= 0; i--) {
    if (buf.messages[i].counts && --left === 0) return buf.messages[i];
  }
  return buf.messages[0] || null;
}

// The newest message someone sent (a server-time, unlike our own info lines).
function lastMessage(buf) {
  for (let i = buf.messages.length - 1; i >= 0; i--) {
    const e = buf.messages[i];
    if (e.msgid) return e;
  }
  return null;
}

// draft/multiline: the batch's PRIVMSGs (or NOTICEs) as one message, lines joined by newlines (by
// nothing where a line carries draft/multiline-concat); msgid, time and reply from the BATCH line.
export function combineMultiline(batch) {
  let text = "";
  let first = null;
  for (const m of batch.messages) {
    if (m.command !== "PRIVMSG" && m.command !== "NOTICE") continue;
    if (!first) first = m;
    else if (!("draft/multiline-concat" in m.tags)) text += "\n";
    text += m.params[1] || "";
  }
  if (!first) return null;
  const tags = { ...first.tags, ...batch.tags };
  delete tags.batch;
  delete tags["draft/multiline-concat"];
  return { tags, source: batch.source || first.source, command: first.command, params: [batch.params[0] || first.params[0], text] };
}

function findMember(chat, buf, nick) {
  const key = chat.fold(nick);
  for (const name of buf.members.keys()) if (chat.fold(name) === key) return name;
  return null;
}

function parseIsupport(chat, tokens) {
  for (const token of tokens) {
    const eq = token.indexOf("=");
    const name = eq < 0 ? token : token.slice(0, eq);
    const value = eq < 0 ? "" : token.slice(eq + 1);
    if (name.startsWith("-")) chat.isupport.delete(name.slice(1));
    else chat.isupport.set(name, value);
    if (name === "CASEMAPPING") chat.fold = casefolder(value);
    else if (name === "CHANTYPES") chat.chantypes = value;
    else if (name === "NETWORK" && value) {
      chat.network = value;
      chat.dirty.add("list");
    } else if (name === "CHANMODES") chat.chanmodes = value.split(",");
    else if (name === "PREFIX") {
      const m = /^\(([^)]*)\)(.*)$/.exec(value);
      if (m) {
        chat.prefixModes = m[1];
        chat.prefixSymbols = m[2];
      }
    }
  }
}

function sortPrefixes(chat, symbols) {
  return [...new Set(symbols)].sort((a, b) => chat.prefixSymbols.indexOf(a) - chat.prefixSymbols.indexOf(b)).join("");
}

function applyModes(chat, buf, modes, args) {
  let adding = true;
  let i = 0;
  for (const mode of modes) {
    if (mode === "+" || mode === "-") {
      adding = mode === "+";
      continue;
    }
    const p = chat.prefixModes.indexOf(mode);
    if (p >= 0) {
      const nick = findMember(chat, buf, args[i++] || "");
      if (nick !== null) {
        const symbol = chat.prefixSymbols[p];
        const current = buf.members.get(nick);
        buf.members.set(nick, sortPrefixes(chat, adding ? current + symbol : current.replace(symbol, "")));
      }
    } else if (chat.chanmodes[0].includes(mode) || chat.chanmodes[1].includes(mode)) i++;
    else if (chat.chanmodes[2].includes(mode) && adding) i++;
  }
  chat.memberChanged(buf);
}

const HANDLERS = {
  "001"(chat, msg) {
    chat.nick = msg.params[0];
    chat.info(chat.buffer(SERVER_BUFFER), msg.params.at(-1));
  },
  "005"(chat, msg) {
    parseIsupport(chat, msg.params.slice(1, -1));
  },
  // RPL_LOGGEDIN <nick> <nick!user@host> <account> :You are now logged in as <account>
  "900"(chat, msg) {
    chat.account = msg.params[2] || null;
    chat.alwaysOn = null; // asked again once registered
    chat.info(chat.buffer(SERVER_BUFFER), msg.params.at(-1));
  },
  // RPL_LOGGEDOUT <nick> <nick!user@host> :You are now logged out
  "901"(chat, msg) {
    chat.account = null;
    chat.info(chat.buffer(SERVER_BUFFER), msg.params.at(-1));
  },
  // REGISTER SUCCESS <account> <message> | REGISTER VERIFICATION_REQUIRED <account> <message>
  REGISTER(chat, msg) {
    const [result, account, text] = msg.params;
    chat.info(chat.buffer(SERVER_BUFFER), result === "SUCCESS" ? `Account ${account} registered.` : `${account}: ${text}`);
  },
  "332"(chat, msg) {
    const buf = chat.buffer(msg.params[1], "channel");
    buf.topic = msg.params[2] || "";
    chat.dirty.add("header");
  },
  "333"() {},
  "353"(chat, msg) {
    const buf = chat.buffer(msg.params[2], "channel");
    if (!buf.pendingNames) buf.pendingNames = new Map();
    for (const item of (msg.params[3] || "").split(" ")) {
      if (!item) continue;
      let n = 0;
      while (n < item.length && chat.prefixSymbols.includes(item[n])) n++;
      buf.pendingNames.set(nickOf(item.slice(n)), sortPrefixes(chat, item.slice(0, n)));
    }
  },
  "366"(chat, msg) {
    const buf = chat.buffer(msg.params[1]);
    if (!buf) return;
    buf.members = buf.pendingNames || new Map();
    buf.pendingNames = null;
    chat.memberChanged(buf);
  },
  "331"() {},
  "315"() {},
  JOIN(chat, msg) {
    const nick = nickOf(msg.source);
    const buf = chat.buffer(msg.params[0], "channel");
    if (chat.isMe(nick)) {
      buf.joined = true;
      buf.name = msg.params[0];
      buf.members = new Map();
      buf.historyDone = false;
      chat.info(buf, `You joined ${buf.name}`, "join", chat.timeOf(msg));
      const key = chat.key(buf.name);
      if (chat.switchOnJoin.has(key) || !chat.active || chat.active === SERVER_BUFFER) {
        chat.switchOnJoin.delete(key);
        chat.setActive(buf.name);
      }
      chat.joinedEvent = buf.name;
    } else {
      buf.members.set(nick, "");
      chat.info(buf, `${nick} joined`, "join", chat.timeOf(msg));
    }
    chat.memberChanged(buf);
  },
  PART(chat, msg) {
    const nick = nickOf(msg.source);
    const buf = chat.buffer(msg.params[0]);
    if (!buf) return;
    const reason = msg.params[1] ? ` (${msg.params[1]})` : "";
    if (chat.isMe(nick)) {
      buf.joined = false;
      buf.members = new Map();
      chat.info(buf, `You left ${buf.name}${reason}`, "part", chat.timeOf(msg));
    } else {
      const member = findMember(chat, buf, nick);
      if (member !== null) buf.members.delete(member);
      buf.typing.delete(nick);
      chat.info(buf, `${nick} left${reason}`, "part", chat.timeOf(msg));
    }
    chat.memberChanged(buf);
  },
  KICK(chat, msg) {
    const buf = chat.buffer(msg.params[0]);
    if (!buf) return;
    const victim = msg.params[1];
    const by = nickOf(msg.source);
    const reason = msg.params[2] ? ` (${msg.params[2]})` : "";
    if (chat.isMe(victim)) {
      buf.joined = false;
      buf.members = new Map();
      chat.info(buf, `${by} removed you from ${buf.name}${reason}`, "part", chat.timeOf(msg));
    } else {
      const member = findMember(chat, buf, victim);
      if (member !== null) buf.members.delete(member);
      chat.info(buf, `${by} removed ${victim}${reason}`, "part", chat.timeOf(msg));
    }
    chat.memberChanged(buf);
  },
  QUIT(chat, msg) {
    const nick = nickOf(msg.source);
    const reason = msg.params[0] ? ` (${msg.params[0]})` : "";
    for (const buf of chat.channelsWith(nick)) {
      buf.members.delete(findMember(chat, buf, nick));
      buf.typing.delete(nick);
      chat.info(buf, `${nick} quit${reason}`, "part", chat.timeOf(msg));
      chat.memberChanged(buf);
    }
    const query = chat.buffer(nick);
    if (query && query.kind === "query") chat.info(query, `${nick} quit${reason}`, "part", chat.timeOf(msg));
  },
  NICK(chat, msg) {
    const old = nickOf(msg.source);
    const renamed = msg.params[0];
    const wasMe = chat.isMe(old);
    if (wasMe) chat.nick = renamed;
    const text = wasMe ? `You are now known as ${renamed}` : `${old} is now known as ${renamed}`;
    for (const buf of chat.channelsWith(old)) {
      const member = findMember(chat, buf, old);
      const prefix = buf.members.get(member);
      buf.members.delete(member);
      buf.members.set(renamed, prefix);
      chat.info(buf, text, "nick", chat.timeOf(msg));
      chat.memberChanged(buf);
    }
    const query = chat.buffer(old);
    if (query && query.kind === "query" && !wasMe) {
      chat.buffers.delete(chat.key(old));
      query.name = renamed;
      chat.buffers.set(chat.key(renamed), query);
      if (chat.active && chat.key(chat.active) === chat.key(old)) chat.active = renamed;
      chat.info(query, text, "nick", chat.timeOf(msg));
      chat.dirty.add("list").add("header");
    }
    if (wasMe) chat.info(chat.buffer(SERVER_BUFFER), text, "nick");
  },
  TOPIC(chat, msg) {
    const buf = chat.buffer(msg.params[0], "channel");
    buf.topic = msg.params[1] || "";
    const by = nickOf(msg.source);
    chat.info(buf, buf.topic ? `${by} set the topic: ${buf.topic}` : `${by} cleared the topic`, "topic", chat.timeOf(msg));
    chat.dirty.add("header");
  },
  MODE(chat, msg) {
    const target = msg.params[0];
    if (!chat.isChannel(target)) return;
    const buf = chat.buffer(target);
    if (!buf) return;
    applyModes(chat, buf, msg.params[1] || "", msg.params.slice(2));
    chat.info(buf, `${nickOf(msg.source)} set mode ${msg.params.slice(1).join(" ")}`, "mode", chat.timeOf(msg));
  },
  "324"(chat, msg) {
    const buf = chat.buffer(msg.params[1]);
    if (buf) chat.info(buf, `Channel modes: ${msg.params.slice(2).join(" ")}`);
  },
  "329"() {},
  PRIVMSG(chat, msg) {
    chat.onText(msg);
  },
  NOTICE(chat, msg) {
    const text = msg.params[1] || "";
    // Read (and shown): also the answer to a SET sent without labeled-response, a refusal included.
    if (isService(nickOf(msg.source) || "") && !chat.noteServiceNotice(text) && text.startsWith("Always-on")) {
      chat.alwaysOnPending = false;
      chat.dirty.add("me");
    }
    chat.onText(msg);
  },
  // draft/chathistory-targets: CHATHISTORY TARGETS <target> <time>; the private ones are opened.
  CHATHISTORY(chat, msg) {
    const [sub, target] = msg.params;
    if (sub === "TARGETS" && target && !chat.isChannel(target) && !chat.isMe(target) && !isService(target)) {
      chat.privateTargets.push(target);
    }
  },
  TAGMSG(chat, msg) {
    chat.onTagmsg(msg);
  },
  // draft/message-redaction: REDACT <target> <msgid> [:<reason>]
  REDACT(chat, msg) {
    const buf = chat.targetBuffer(msg, false);
    if (buf) chat.redact(buf, msg.params[1] || "");
  },
  // draft/read-marker: MARKREAD <target> timestamp=... ("*": none yet)
  MARKREAD(chat, msg) {
    const [target, stamp = ""] = msg.params;
    const buf = target ? chat.buffer(target) : null;
    if (!buf) return;
    // A conversation we opened from TARGETS and never read anywhere: all of it is unread.
    const asked = chat.markerAsked.delete(chat.key(buf.name));
    if (stamp.startsWith("timestamp=")) chat.applyReadMarker(buf, new Date(stamp.slice(10)));
    else if (stamp === "*" && asked) chat.applyReadMarker(buf, new Date(0));
  },
  INVITE(chat, msg) {
    chat.info(chat.activeBuffer || chat.buffer(SERVER_BUFFER),
      `${nickOf(msg.source)} invites you to ${msg.params[1]} (type /join ${msg.params[1]})`);
  },
  BATCH(chat, msg) {
    const ref = msg.params[0] || "";
    if (ref.startsWith("+")) {
      chat.batches.set(ref.slice(1), {
        type: msg.params[1], params: msg.params.slice(2), messages: [], tags: msg.tags, source: msg.source,
        outer: msg.tags.batch && chat.batches.has(msg.tags.batch) ? msg.tags.batch : null,
      });
    } else if (ref.startsWith("-")) {
      const batch = chat.batches.get(ref.slice(1));
      chat.batches.delete(ref.slice(1));
      if (!batch) return;
      if (batch.tags.label && chat.quietLabels.has(batch.tags.label)) {
        chat.quietAnswer(batch.tags.label, batch.messages);
        return;
      }
      if (batch.type === "chathistory" || batch.type === "draft/chathistory") chat.mergeHistory(batch.params[0], batch.messages);
      else if (batch.type === "soju.im/search" || batch.type === "search") chat.searchResults(batch.messages);
      else if (batch.type === "draft/multiline") {
        // One message of several lines (inside a chathistory batch: one of its messages).
        const combined = combineMultiline(batch);
        const outer = batch.outer && chat.batches.get(batch.outer);
        if (combined && outer) outer.messages.push(combined);
        else if (combined) chat.handle(combined);
      } else for (const inner of batch.messages) chat.handle({ ...inner, tags: { ...inner.tags, batch: undefined } });
    }
  },
  ERROR(chat, msg) {
    chat.info(chat.buffer(SERVER_BUFFER), msg.params.at(-1) || "", "error");
  },
  FAIL(chat, msg) {
    const text = msg.params.at(-1) || "";
    if (msg.params[0] === "SEARCH" && chat.search && chat.search.skip) {
      chat.search.skip--; // the answer to an earlier search, asked before this one: not this one's
    } else if (msg.params[0] === "SEARCH" && chat.search && chat.search.loading) {
      chat.search.loading = false;
      chat.search.error = text;
      chat.dirty.add("search");
    } else if (msg.params[0] === "WEBPUSH") chat.pushReplies.push({ command: msg.params[2] || "", error: text, code: msg.params[1] || "" });
    else chat.error(text);
  },
  // soju.im/webpush: the server's echo of WEBPUSH REGISTER|UNREGISTER <endpoint>: done.
  WEBPUSH(chat, msg) {
    chat.pushReplies.push({ command: (msg.params[0] || "").toUpperCase(), endpoint: msg.params[1] || "", error: "" });
  },
  WARN(chat, msg) {
    chat.info(chat.activeBuffer || chat.buffer(SERVER_BUFFER), msg.params.at(-1) || "");
  },
  CAP() {},
  PING() {},
  PONG() {},
  AWAY() {},
  CHGHOST() {},
  SETNAME() {},
  // Not worth a line: connection statistics and the like go to the server buffer via the default.
  "433"(chat, msg) {
    if (chat.nick) chat.error(msg.params.slice(1).join(" "));
  },
};
