// The page's model (model.js) under node's test runner: what the page would show, from IRC lines.
import assert from "node:assert/strict";
import test from "node:test";

import { MAX_MESSAGES, SERVER_BUFFER, combineMultiline, seqIndex } from "../../../src/salotto/clients/web/model.js";
import { chatAs, feed, privmsg, texts } from "./helpers.mjs";

function inLobby(nick = "me", caps) {
  const chat = chatAs(nick, caps);
  feed(chat, `:${nick}!u@h JOIN #lobby`, `:srv 353 ${nick} = #lobby :${nick} @op bob`, `:srv 366 ${nick} #lobby :End`);
  return chat;
}

test("a buffer keeps MAX_MESSAGES messages, the oldest go without a full redraw", () => {
  const chat = inLobby();
  const buf = chat.buffer("#lobby");
  const version = buf.version;
  for (let i = 0; i < MAX_MESSAGES + 25; i++) feed(chat, privmsg("bob", "#lobby", `n${i}`, { msgid: `id${i}`, at: i % 50 }));
  assert.equal(buf.messages.length, MAX_MESSAGES);
  assert.equal(buf.messages.at(-1).text, `n${MAX_MESSAGES + 24}`);
  assert.equal(buf.version, version, "appending and trimming are not a rearrangement");
  assert.ok(!buf.byId.has("id0"), "a dropped message is forgotten");
  // seqs increase along the array: the view finds a line by binary search.
  for (let i = 1; i < buf.messages.length; i++) assert.ok(buf.messages[i].seq > buf.messages[i - 1].seq);
  assert.equal(seqIndex(buf.messages, buf.messages[5000].seq), 5000);
  assert.equal(seqIndex(buf.messages, -3), -1);
});

test("a message seen twice (echo and history) is kept once", () => {
  const chat = inLobby();
  feed(chat, privmsg("bob", "#lobby", "hi", { msgid: "a1" }), privmsg("bob", "#lobby", "hi", { msgid: "a1" }));
  assert.deepEqual(texts(chat.buffer("#lobby")), ["hi"]);
});

test("a reply carries the msgid it answers", () => {
  const chat = inLobby();
  feed(chat, privmsg("bob", "#lobby", "question?", { msgid: "q1", at: 1 }),
    privmsg("op", "#lobby", "answer", { msgid: "r1", at: 2, tags: { "+draft/reply": "q1" } }));
  const buf = chat.buffer("#lobby");
  const answer = chat.find(buf, "r1");
  assert.equal(answer.reply, "q1");
  assert.equal(chat.find(buf, answer.reply).text, "question?");
});

test("reactions are counted per emoji, once per person, and a REDACT of one takes it back", () => {
  const chat = inLobby("me", ["message-tags", "echo-message", "batch", "server-time", "draft/message-redaction"]);
  feed(chat, privmsg("bob", "#lobby", "lunch?", { msgid: "l1" }));
  feed(chat,
    "@msgid=x1;+draft/react=👍;+draft/reply=l1 :op!u@h TAGMSG #lobby",
    "@msgid=x2;+draft/react=👍;+draft/reply=l1 :me!u@h TAGMSG #lobby",
    "@msgid=x2;+draft/react=👍;+draft/reply=l1 :me!u@h TAGMSG #lobby", // the same one again (history)
    "@msgid=x3;+draft/react=👍;+draft/reply=l1 :OP!u@h TAGMSG #lobby", // op again, other case
    "@msgid=x4;+draft/react=🎉;+draft/reply=l1 :bob!u@h TAGMSG #lobby");
  const buf = chat.buffer("#lobby");
  const entry = chat.find(buf, "l1");
  assert.deepEqual([...entry.reactions.get("👍")], ["op", "me"]);
  assert.deepEqual([...entry.reactions.get("🎉")], ["bob"]);
  assert.ok(buf.updated.has(entry), "the view redraws that line alone");
  feed(chat, ":bob!u@h REDACT #lobby x4");
  assert.ok(!entry.reactions.has("🎉"));
  assert.equal(buf.messages.length, 2, "the message stays ('You joined' and it)");
});

test("a reaction to a message not loaded yet waits for it (history comes later)", () => {
  const chat = inLobby();
  feed(chat, "@msgid=x1;+draft/react=❤️;+draft/reply=old1 :bob!u@h TAGMSG #lobby");
  const buf = chat.buffer("#lobby");
  feed(chat,
    "@batch=h1 :srv BATCH +h1 chathistory #lobby".replace("@batch=h1 ", ""),
    `@batch=h1;${privmsg("op", "#lobby", "from before", { msgid: "old1", at: 0 }).slice(1)}`,
    "@batch=h1;msgid=x5;+draft/react=😂;+draft/reply=old1 :me!u@h TAGMSG #lobby",
    ":srv BATCH -h1");
  const entry = chat.find(buf, "old1");
  assert.equal(entry.text, "from before");
  assert.deepEqual([...entry.reactions.keys()], ["❤️", "😂"], "from live and from the replay");
});

test("a too long reaction, or one without the message it reacts to, is not shown", () => {
  const chat = inLobby();
  feed(chat, privmsg("bob", "#lobby", "hey", { msgid: "h1" }),
    `@msgid=x1;+draft/react=${"a".repeat(40)};+draft/reply=h1 :op!u@h TAGMSG #lobby`,
    "@msgid=x2;+draft/react=👍 :op!u@h TAGMSG #lobby");
  assert.equal(chat.find(chat.buffer("#lobby"), "h1").reactions, null);
});

test("REDACT removes the message; replies to it lose their original", () => {
  const chat = inLobby("me", ["message-tags", "batch", "server-time", "draft/message-redaction"]);
  feed(chat, privmsg("bob", "#lobby", "oops", { msgid: "o1", at: 1 }),
    privmsg("op", "#lobby", "what?", { msgid: "o2", at: 2, tags: { "+draft/reply": "o1" } }),
    privmsg("bob", "#lobby", "after", { msgid: "o3", at: 3 }));
  const buf = chat.buffer("#lobby");
  buf.updated.clear();
  feed(chat, ":bob!u@h REDACT #lobby o1 :typo");
  assert.deepEqual(texts(buf), ["what?", "after"]);
  assert.equal(chat.find(buf, "o1"), null);
  assert.ok(buf.removed.some((e) => e.msgid === "o1"));
  assert.ok(buf.updated.has(chat.find(buf, "o2")), "the reply's preview is redrawn");
  // The seqs still increase: the view's binary search finds the rest.
  assert.equal(seqIndex(buf.messages, chat.find(buf, "o3").seq), buf.messages.length - 1);
  // An unknown msgid changes nothing.
  feed(chat, ":bob!u@h REDACT #lobby nope");
  assert.equal(texts(buf).length, 2);
});

test("a REDACT in a private conversation finds it by the other side's nick", () => {
  const chat = chatAs("me", ["message-tags", "draft/message-redaction"]);
  feed(chat, privmsg("bob", "me", "secret", { msgid: "p1" }), ":bob!u@h REDACT me p1");
  assert.deepEqual(texts(chat.buffer("bob")), []);
  feed(chat, privmsg("me", "bob", "mine", { msgid: "p2" }), ":me!u@h REDACT bob p2");
  assert.deepEqual(texts(chat.buffer("bob")), []);
});

test("who may delete: one's own messages; an operator anyone's; not without the cap", () => {
  const caps = ["message-tags", "draft/message-redaction"];
  const chat = inLobby("me", caps);
  feed(chat, privmsg("me", "#lobby", "mine", { msgid: "a" }), privmsg("bob", "#lobby", "bob's", { msgid: "b" }));
  const buf = chat.buffer("#lobby");
  assert.ok(chat.canRedact(buf, chat.find(buf, "a")));
  assert.ok(!chat.canRedact(buf, chat.find(buf, "b")));
  feed(chat, ":op!u@h MODE #lobby +o me");
  assert.ok(chat.canRedact(buf, chat.find(buf, "b")), "an operator may");
  chat.caps = new Set(["message-tags"]);
  assert.ok(!chat.canRedact(buf, chat.find(buf, "a")), "the server does not take REDACT");
});

test("unread counts, the 'new messages' line, and MARKREAD sent when a buffer is read", () => {
  const chat = inLobby("me", ["message-tags", "server-time", "draft/read-marker"]);
  feed(chat, ":srv 900 me me!u@h me :You are now logged in as me");
  feed(chat, ":me!u@h JOIN #side");
  chat.setActive("#side");
  chat.outbox.length = 0;
  feed(chat, privmsg("bob", "#lobby", "one", { msgid: "u1", at: 1 }), privmsg("bob", "#lobby", "two", { msgid: "u2", at: 2 }),
    privmsg("bob", "#lobby", "me: three", { msgid: "u3", at: 3 }));
  const lobby = chat.buffer("#lobby");
  assert.equal(lobby.unread, 3);
  assert.ok(lobby.mention);
  chat.setActive("#lobby");
  assert.equal(lobby.unread, 0);
  assert.equal(lobby.newFrom.text, "one", "the line goes above the first unread message");
  assert.deepEqual(chat.outbox, [["MARKREAD", ["#lobby", "timestamp=2026-01-01T12:00:03.000Z"]]]);
  // Seen again: nothing new to say.
  chat.markSeen();
  assert.equal(chat.outbox.length, 1);
});

test("no MARKREAD without the cap or an account", () => {
  const chat = inLobby("me", ["message-tags", "server-time", "draft/read-marker"]);
  feed(chat, privmsg("bob", "#lobby", "one", { msgid: "u1", at: 1 }));
  chat.setActive("#lobby");
  assert.deepEqual(chat.outbox, []);
});

test("a MARKREAD from another device clears what was read there", () => {
  const chat = inLobby();
  feed(chat, ":me!u@h JOIN #side");
  chat.setActive("#side");
  feed(chat, privmsg("bob", "#lobby", "one", { msgid: "u1", at: 1 }), privmsg("bob", "#lobby", "me: two", { msgid: "u2", at: 2 }),
    privmsg("bob", "#lobby", "three", { msgid: "u3", at: 3 }));
  const lobby = chat.buffer("#lobby");
  assert.equal(lobby.unread, 3);
  feed(chat, ":srv MARKREAD #lobby timestamp=2026-01-01T12:00:02.000Z");
  assert.equal(lobby.unread, 1);
  feed(chat, ":srv MARKREAD #lobby timestamp=2026-01-01T12:00:01.000Z"); // older: ignored
  assert.equal(lobby.unread, 1);
  feed(chat, ":srv MARKREAD #lobby timestamp=2026-01-01T12:00:03.000Z");
  assert.equal(lobby.unread, 0);
  assert.ok(!lobby.mention);
  feed(chat, ":srv MARKREAD #lobby *");
  assert.equal(lobby.readUntil.toISOString(), "2026-01-01T12:00:03.000Z");
});

test("history newer than the read marker counts as unread; older does not", () => {
  const chat = inLobby();
  feed(chat, ":me!u@h JOIN #side");
  chat.setActive("#side");
  feed(chat, ":srv MARKREAD #lobby timestamp=2026-01-01T12:00:02.000Z");
  feed(chat, ":srv BATCH +h chathistory #lobby",
    `@batch=h;${privmsg("bob", "#lobby", "old", { msgid: "h1", at: 1 }).slice(1)}`,
    `@batch=h;${privmsg("bob", "#lobby", "new", { msgid: "h2", at: 3 }).slice(1)}`,
    `@batch=h;${privmsg("me", "#lobby", "mine", { msgid: "h3", at: 4 }).slice(1)}`,
    ":srv BATCH -h");
  assert.equal(chat.buffer("#lobby").unread, 1);
});

test("mentions and private messages while the page is hidden become notifications", () => {
  const chat = inLobby();
  chat.setActive("#lobby");
  feed(chat, privmsg("bob", "#lobby", "me: visible now", { at: 1 }));
  assert.equal(chat.notifications.length, 0);
  chat.hidden = true;
  feed(chat, privmsg("bob", "#lobby", "nothing for you", { at: 2 }), privmsg("bob", "#lobby", "me: look", { at: 3 }),
    privmsg("bob", "me", "psst", { at: 4 }));
  assert.deepEqual(chat.notifications.map((n) => [n.buffer, n.entry.text]), [["#lobby", "me: look"], ["bob", "psst"]]);
  assert.equal(chat.buffer("#lobby").unread, 2, "the active buffer counts while hidden");
});

test("a draft/multiline batch is one message of several lines", () => {
  const chat = inLobby();
  feed(chat, "@msgid=ml1;time=2026-01-01T12:00:00.000Z;+draft/reply=q :bob!u@h BATCH +b draft/multiline #lobby",
    "@batch=b :bob!u@h PRIVMSG #lobby :first line",
    "@batch=b :bob!u@h PRIVMSG #lobby :second ",
    "@batch=b;draft/multiline-concat :bob!u@h PRIVMSG #lobby :continued",
    ":srv BATCH -b");
  const buf = chat.buffer("#lobby");
  const entry = chat.find(buf, "ml1");
  assert.equal(entry.text, "first line\nsecond continued");
  assert.equal(entry.reply, "q");
  assert.equal(entry.nick, "bob");
});

test("a multiline message inside a chathistory batch is merged as one", () => {
  const chat = inLobby();
  feed(chat, ":srv BATCH +h chathistory #lobby",
    "@batch=h;msgid=ml2;time=2026-01-01T11:00:00.000Z :bob!u@h BATCH +m draft/multiline #lobby",
    "@batch=m :bob!u@h PRIVMSG #lobby :a",
    "@batch=m :bob!u@h PRIVMSG #lobby :b",
    "@batch=h :srv BATCH -m",
    ":srv BATCH -h");
  assert.equal(chat.find(chat.buffer("#lobby"), "ml2").text, "a\nb");
  assert.equal(combineMultiline({ messages: [], tags: {}, params: ["#x"] }), null);
});

test("in the open buffer, history newer than the read marker gets the 'new messages' line", () => {
  const chat = inLobby();
  chat.setActive("#lobby");
  feed(chat, ":srv MARKREAD #lobby timestamp=2026-01-01T12:00:02.000Z");
  feed(chat, ":srv BATCH +h chathistory #lobby",
    `@batch=h;${privmsg("bob", "#lobby", "read before", { msgid: "h1", at: 1 }).slice(1)}`,
    `@batch=h;${privmsg("bob", "#lobby", "since then", { msgid: "h2", at: 3 }).slice(1)}`,
    `@batch=h;${privmsg("bob", "#lobby", "and this", { msgid: "h3", at: 4 }).slice(1)}`,
    ":srv BATCH -h");
  const lobby = chat.buffer("#lobby");
  assert.equal(lobby.newFrom.text, "since then");
  assert.equal(lobby.unread, 0, "on screen: not counted");
});

test("NickServ's answers to the page's quiet requests set always-on without a line; a refusal shows", () => {
  const chat = inLobby("mia", ["message-tags", "batch", "labeled-response", "echo-message"]);
  const server = chat.buffer(SERVER_BUFFER);
  const before = server.messages.length;
  chat.quietLabels.set("ns1", "info");
  feed(chat, "@label=ns1 :srv BATCH +b1 labeled-response",
    "@batch=b1 :NickServ!NickServ@srv NOTICE mia :Account mia, registered 2026-12-07 01:00 UTC.",
    "@batch=b1 :NickServ!NickServ@srv NOTICE mia :Always-on: on.",
    ":srv BATCH -b1");
  assert.equal(chat.alwaysOn, true);
  assert.equal(server.messages.length, before, "INFO's lines are not shown");
  chat.quietLabels.set("ns2", "set");
  chat.alwaysOnPending = true;
  feed(chat, "@label=ns2 :srv BATCH +b2 labeled-response",
    "@batch=b2 :mia!u@h PRIVMSG NickServ :SET ALWAYS-ON OFF",
    "@batch=b2 :NickServ!NickServ@srv NOTICE mia :Always-on is off for mia: your nick leaves when your last connection does.",
    ":srv BATCH -b2");
  assert.equal(chat.alwaysOn, false);
  assert.equal(chat.alwaysOnPending, false);
  assert.equal(chat.buffer("NickServ"), null, "the echo of the request is not a conversation");
  // Refused (the server's limit): the setting stays as it was, the reason is shown.
  chat.quietLabels.set("ns3", "set");
  chat.alwaysOnPending = true;
  feed(chat, "@label=ns3 :NickServ!NickServ@srv NOTICE mia :Always-on not set: this server allows it for 1 accounts, and that many have it (always_on_max_accounts).");
  assert.equal(chat.alwaysOn, false);
  assert.equal(chat.alwaysOnPending, false);
  assert.ok(chat.activeBuffer.messages.some((e) => e.kind === "error" && e.text.includes("always_on_max_accounts")));
  // Without labeled-response the answer is a notice like any: read, shown, a refusal ends the wait too.
  chat.alwaysOnPending = true;
  feed(chat, ":NickServ!NickServ@srv NOTICE mia :Always-on not set: this server allows it for 1 accounts.");
  assert.equal(chat.alwaysOnPending, false);
  assert.equal(chat.alwaysOn, false);
  // What the user asks NickServ by hand is shown, and read too.
  feed(chat, ":NickServ!NickServ@srv NOTICE mia :Always-on is on for mia: your nick stays.");
  assert.equal(chat.alwaysOn, true);
});

test("private conversations listed by CHATHISTORY TARGETS are collected; channels and services are not", () => {
  const chat = inLobby("mia", ["message-tags", "batch", "draft/chathistory"]);
  feed(chat, ":srv BATCH +t1 draft/chathistory-targets",
    "@batch=t1 :srv CHATHISTORY TARGETS #lobby 2026-12-07T01:00:00.000Z",
    "@batch=t1 :srv CHATHISTORY TARGETS otto 2026-12-07T01:00:00.000Z",
    "@batch=t1 :srv CHATHISTORY TARGETS NickServ 2026-12-07T01:00:00.000Z",
    ":srv BATCH -t1");
  assert.deepEqual(chat.privateTargets, ["otto"]);
  // Its read marker, asked for, is "*" (never read): what its history brings counts as unread.
  chat.buffer("otto", "query");
  chat.markerAsked.add("otto");
  feed(chat, ":srv MARKREAD otto *");
  assert.equal(chat.buffer("otto").readUntil.getTime(), 0);
});

test("joined again after a reconnection, latest messages the page holds already do not end its scroll-back", () => {
  const chat = chatAs("giulia", ["batch", "server-time", "message-tags", "draft/chathistory"]);
  const line = (i) => `@batch=h;msgid=m${i};time=${new Date(Date.UTC(2026, 10, 1, 10, i)).toISOString()} :luca!u@h PRIVMSG #office :note ${i}`;
  const batch = (...ids) => [":srv BATCH +h chathistory #office", ...ids.map(line), ":srv BATCH -h"];
  feed(chat, ":giulia!u@h JOIN #office", ...batch(50, 51, 52));
  const buf = chat.buffer("#office");
  // The connection dropped; nothing was said meanwhile: JOIN again, CHATHISTORY LATEST again.
  feed(chat, ":giulia!u@h JOIN #office", ...batch(50, 51, 52));
  assert.equal(buf.historyDone, false, "older messages (before note 50) can still be loaded");
  // Scrolled to the top: CHATHISTORY BEFORE note 50 says there is nothing older.
  buf.olderPending = true;
  feed(chat, ":srv BATCH +h chathistory #office", ":srv BATCH -h");
  assert.equal(buf.historyDone, true);
});
