// Shared files, search and push: the pure parts of the page (media.js, search.js, push.js) and what the
// model makes of SEARCH results and WEBPUSH answers.
import assert from "node:assert/strict";
import test from "node:test";

import { parseMessage } from "../../../src/salotto/clients/web/irc.js";
import {
  basicAuth, contentDisposition, fileKind, filehostOrigin, formatBytes, ownFile, pastedName, uploadError, uploadUrl,
} from "../../../src/salotto/clients/web/media.js";
import {
  base64urlToBytes, bytesToBase64url, chatWindow, conversationUrl, pushNotification, subscriptionKeys, targetFromHash,
} from "../../../src/salotto/clients/web/push.js";
import { matchRanges, searchAttrs, searchWords } from "../../../src/salotto/clients/web/search.js";
import { chatAs, feed } from "./helpers.mjs";

const ORIGIN = "https://chat.example.org";

test("only this server's own /files/ links are files; pictures and videos by their extension", () => {
  assert.deepEqual(ownFile(`${ORIGIN}/files/abc123/cat.PNG`, ORIGIN),
    { kind: "image", name: "cat.PNG", href: `${ORIGIN}/files/abc123/cat.PNG` });
  assert.equal(ownFile(`${ORIGIN}/files/x/holiday%20clip.webm`, ORIGIN).kind, "video");
  assert.equal(ownFile(`${ORIGIN}/files/x/holiday%20clip.webm`, ORIGIN).name, "holiday clip.webm");
  assert.equal(ownFile(`${ORIGIN}/sub/files/x/notes.pdf`, ORIGIN).kind, "file");
  assert.equal(ownFile("https://evil.example/files/abc/cat.png", ORIGIN), null, "another site is a plain link");
  assert.equal(ownFile(`http://chat.example.org/files/abc/cat.png`, ORIGIN), null, "another scheme is another origin");
  assert.equal(ownFile(`${ORIGIN}/files/abc/cat.png?x=1`, ORIGIN), null);
  assert.equal(ownFile(`${ORIGIN}/notfiles/cat.png`, ORIGIN), null);
  assert.equal(ownFile(`${ORIGIN}/files/abc/%E0%A4%A.png`, ORIGIN), null, "a broken escape is no file");
  // The server calling itself by another name (FILEHOST's): shown from the page's own origin.
  assert.deepEqual(ownFile("http://127.0.0.1:8080/files/abc/cat.png", "http://localhost:8080", ["http://127.0.0.1:8080"]),
    { kind: "image", name: "cat.png", href: "http://localhost:8080/files/abc/cat.png" });
  assert.equal(ownFile("http://127.0.0.1:8080/files/abc/cat.png", "http://localhost:8080", []), null);
  for (const [name, kind] of [["a.jpg", "image"], ["a.jpeg", "image"], ["a.gif", "image"], ["a.webp", "image"],
    ["a.svg", "file"], ["a.html", "file"], ["a.mp4", "video"], ["README", "file"]]) assert.equal(fileKind(name), kind, name);
});

test("sizes read as a file manager shows them", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1234), "1.2 kB");
  assert.equal(formatBytes(25_000_000), "25 MB");
  assert.equal(formatBytes(NaN), "");
});

test("an upload names its file in Content-Disposition, in ASCII and exactly (RFC 6266)", () => {
  assert.equal(contentDisposition("cat.png"), 'attachment; filename="cat.png"');
  assert.equal(contentDisposition('say "cheese".png'), "attachment; filename=\"say 'cheese'.png\"; filename*=UTF-8''say%20%22cheese%22.png");
  assert.equal(contentDisposition("café ☕.png"), "attachment; filename=\"caf_ _.png\"; filename*=UTF-8''caf%C3%A9%20%E2%98%95.png");
  assert.equal(contentDisposition("../../etc/passwd"), 'attachment; filename=".._.._etc_passwd"');
  assert.equal(contentDisposition("a\r\nX-Evil: 1"), 'attachment; filename="a__X-Evil: 1"', "no header injection");
  // Every value is Latin-1 only: the browser refuses anything else in a header.
  for (const name of ["café ☕.png", "日本.txt", "a\u0000b"]) assert.match(contentDisposition(name), /^[\x20-\x7e]*$/);
  assert.equal(basicAuth("giulia", "pässword"), `Basic ${Buffer.from("giulia:pässword").toString("base64")}`);
});

test("the password goes only to the page's own origin (the server it logged in to)", () => {
  const page = "https://chat.example.org/app/";
  assert.equal(uploadUrl("/upload", page), "https://chat.example.org/upload");
  assert.equal(uploadUrl("https://chat.example.org/upload", page), "https://chat.example.org/upload");
  assert.equal(uploadUrl("http://chat.example.org/upload", page), "https://chat.example.org/upload", "never plain http from an https page");
  assert.equal(uploadUrl("https://files.example.net/upload", page), "https://chat.example.org/upload", "never another host");
  assert.equal(uploadUrl("http://127.0.0.1:8080/upload", "http://localhost:8080/"), "http://localhost:8080/upload");
  assert.equal(uploadUrl("javascript:alert(1)", page), null);
  assert.equal(filehostOrigin("http://127.0.0.1:8080/upload", page), "http://127.0.0.1:8080");
  assert.equal(uploadUrl("", page), null);
  assert.equal(uploadUrl(undefined, page), null);
});

test("upload errors say what happened, in the server's words when it has some", () => {
  assert.equal(uploadError(413, "The file is bigger than the 25 MB allowed.\n"), "The file is bigger than the 25 MB allowed.");
  assert.equal(uploadError(413, ""), "The file is too big for this server.");
  assert.equal(uploadError(415, ""), "This server does not accept files of this type.");
  assert.equal(uploadError(401, ""), "The server did not accept your login for uploads.");
  assert.match(uploadError(0, ""), /did not reach the server/);
  assert.equal(uploadError(500, ""), "The upload failed (HTTP 500).");
  assert.equal(pastedName("image/png", new Date(2026, 11, 7, 9, 5, 3)), "pasted-2026-12-07-090503.png");
});

test("SEARCH attributes are escaped as message-tag values", () => {
  assert.equal(searchAttrs({ text: "projector room", in: "#lobby", limit: 25 }), "text=projector\\sroom;in=#lobby;limit=25");
  assert.equal(searchAttrs({ text: "a;b\\c", in: null, before: "2026-12-01T10:00:00.000Z" }),
    "text=a\\:b\\\\c;before=2026-12-01T10:00:00.000Z");
  const line = parseMessage(`SEARCH ${searchAttrs({ text: "x y" })}`);
  assert.deepEqual(line.params, ["text=x\\sy"], "one parameter, no spaces");
});

test("the searched words are marked where they are whole words, case and accents aside", () => {
  assert.deepEqual(searchWords('"Projector" room -cable café'), ["projector", "room", "cable", "cafe"]);
  const text = "The projector in Room 2: projectors and a storeroom";
  const marked = matchRanges(text, "projector room").map(([a, b]) => text.slice(a, b));
  assert.deepEqual(marked, ["projector", "Room"], "not projectors, not storeroom");
  assert.deepEqual(matchRanges("Un CAFÉ au lait", "cafe"), [[3, 7]]);
  assert.deepEqual(matchRanges("abc", ""), []);
  assert.deepEqual(matchRanges("a-b a_b", "a b"), [[0, 1], [2, 3], [4, 5], [6, 7]]);
});

test("search results are kept newest first, once each, and paging stops when a page comes short", () => {
  const chat = chatAs("giulia", ["batch", "server-time", "message-tags", "soju.im/search"]);
  feed(chat, ":giulia!u@h JOIN #lobby");
  const before = chat.buffer("#lobby").messages.length;
  chat.newSearch("cable", null, 2);
  feed(chat, ":srv BATCH +s1 soju.im/search",
    "@batch=s1;msgid=a1;time=2026-11-02T10:00:00.000Z :luca!u@h PRIVMSG #lobby :the \x02cable\x02 is old",
    "@batch=s1;msgid=a2;time=2026-11-03T10:00:00.000Z :luca!u@h PRIVMSG giulia :new cable tomorrow",
    ":srv BATCH -s1");
  const search = chat.search;
  assert.deepEqual(search.results.map((r) => [r.msgid, r.target, r.text]),
    [["a2", "luca", "new cable tomorrow"], ["a1", "#lobby", "the cable is old"]]);
  assert.equal(search.done, false, "a full page: there may be more");
  assert.equal(chat.buffer("#lobby").messages.length, before, "results are not messages of the buffer");
  assert.equal(chat.buffer("luca"), null, "nor do they open conversations");
  // The next page (before= the oldest one's time) repeats the oldest one: it is not shown twice.
  feed(chat, ":srv BATCH +s2 soju.im/search",
    "@batch=s2;msgid=a0;time=2026-11-01T10:00:00.000Z :giulia!u@h PRIVMSG #lobby :\x01ACTION bought a cable\x01",
    "@batch=s2;msgid=a1;time=2026-11-02T10:00:00.000Z :luca!u@h PRIVMSG #lobby :the cable is old",
    ":srv BATCH -s2");
  assert.deepEqual(search.results.map((r) => r.msgid), ["a2", "a1", "a0"]);
  assert.equal(search.results[2].kind, "action");
  assert.equal(search.results[2].self, true);
  assert.equal(search.done, false);
  feed(chat, ":srv BATCH +s3 soju.im/search", ":srv BATCH -s3");
  assert.equal(search.done, true);
  assert.equal(search.loading, false);
});

test("a new search while one is on its way does not take the old one's answer", () => {
  const chat = chatAs("giulia");
  chat.newSearch("cable", null, 25);
  const second = chat.newSearch("lunch", null, 25);
  feed(chat, ":srv BATCH +a soju.im/search",
    "@batch=a;msgid=c1;time=2026-11-02T10:00:00.000Z :luca!u@h PRIVMSG #lobby :a cable",
    ":srv BATCH -a", ":srv BATCH +b soju.im/search",
    "@batch=b;msgid=l1;time=2026-11-02T11:00:00.000Z :luca!u@h PRIVMSG #lobby :lunch?", ":srv BATCH -b");
  assert.equal(chat.search, second);
  assert.deepEqual(second.results.map((r) => r.msgid), ["l1"]);
  assert.ok(second.id > 1);
});

test("a refused search says why in the search, not in the chat", () => {
  const chat = chatAs("giulia");
  chat.newSearch("x", "#nowhere", 25);
  feed(chat, "FAIL SEARCH INVALID_PARAMS in :You cannot search #nowhere");
  assert.equal(chat.search.error, "You cannot search #nowhere");
  assert.equal(chat.search.loading, false);
});

test("WEBPUSH echoes and refusals reach main.js; ISUPPORT tokens are kept", () => {
  const chat = chatAs("giulia");
  feed(chat, ":srv 005 giulia VAPID=BKey_-x soju.im/FILEHOST=/upload NETWORK=Salotto :are supported");
  assert.equal(chat.isupport.get("VAPID"), "BKey_-x");
  assert.equal(chat.isupport.get("soju.im/FILEHOST"), "/upload");
  feed(chat, ":srv 005 giulia -soju.im/FILEHOST :are supported");
  assert.equal(chat.isupport.has("soju.im/FILEHOST"), false);
  feed(chat, ":srv WEBPUSH REGISTER https://push.example/abc",
    "FAIL WEBPUSH INVALID_PARAMS REGISTER https://push.example/x :Bad keys");
  assert.deepEqual(chat.pushReplies, [
    { command: "REGISTER", endpoint: "https://push.example/abc", error: "" },
    { command: "REGISTER", error: "Bad keys", code: "INVALID_PARAMS" }]);
});

test("a push's IRC line becomes a notification: a mention in a room, a private message", () => {
  assert.deepEqual(pushNotification("@msgid=m1;time=2026-12-07T09:00:00.000Z :luca!l@h PRIVMSG #lobby :giulia: the projector works"), {
    title: "luca in #lobby", body: "giulia: the projector works", target: "#lobby", tag: "salotto #lobby", msgid: "m1" });
  const direct = pushNotification(":Marco!m@h PRIVMSG giulia :lunch at 1?");
  assert.equal(direct.title, "Marco");
  assert.equal(direct.target, "Marco");
  assert.equal(direct.tag, "salotto marco");
  assert.equal(pushNotification(":luca!l@h NOTICE giulia :\x0304red\x03 alert").body, "red alert");
  assert.equal(pushNotification(":luca!l@h PRIVMSG #lobby :\x01ACTION waves at giulia\x01").body, "* luca waves at giulia");
  assert.equal(pushNotification(":luca!l@h PRIVMSG @#ops :ops only").target, "#ops");
  assert.equal(pushNotification(":luca!l@h PRIVMSG giulia :\x01VERSION\x01"), null);
  assert.equal(pushNotification(":srv 001 giulia :hi"), null);
  assert.equal(pushNotification(`:a!b@c PRIVMSG x :${"y".repeat(500)}`).body.length, 301);
});

test("a notification leads to the page with the conversation in the fragment, which the page reads back", () => {
  assert.equal(conversationUrl("https://chat.example.org/app/sw.js", "#lobby"), "https://chat.example.org/app/#%23lobby");
  assert.equal(conversationUrl("https://chat.example.org/", "luca"), "https://chat.example.org/#luca");
  assert.equal(targetFromHash("#%23lobby"), "#lobby");
  assert.equal(targetFromHash("##lobby"), "#lobby");
  assert.equal(targetFromHash("#luca"), "luca");
  assert.equal(targetFromHash(""), null);
  assert.equal(targetFromHash("#a%20b"), null, "no spaces in a target");
  assert.equal(targetFromHash("#%E0%A4%A"), null);
});

test("subscription keys travel as base64url, no padding", () => {
  const bytes = Uint8Array.from([251, 255, 0, 1, 2]);
  assert.equal(bytesToBase64url(bytes), "-_8AAQI");
  assert.deepEqual([...base64urlToBytes("-_8AAQI")], [...bytes]);
  assert.equal(subscriptionKeys(Uint8Array.from([1, 2, 3]), Uint8Array.from([4])), "p256dh=AQID;auth=BA");
});

test("a window loaded around an old message keeps a gap before the newer ones until it is filled", () => {
  const chat = chatAs("giulia", ["batch", "server-time", "message-tags", "draft/chathistory"]);
  const line = (i) => `@batch=h;msgid=m${i};time=${new Date(Date.UTC(2026, 10, 1, 10, i)).toISOString()} :luca!u@h PRIVMSG #office :note ${i}`;
  const batch = (...ids) => [":srv BATCH +h chathistory #office", ...ids.map(line), ":srv BATCH -h"];
  feed(chat, ":giulia!u@h JOIN #office", ...batch(50, 51, 52));
  const buf = chat.buffer("#office");
  const kinds = () => buf.messages.filter((e) => e.kind !== "join").map((e) => (e.kind === "gap" ? "gap" : e.text));
  buf.aroundPending = "m5";
  feed(chat, ...batch(4, 5, 6));
  assert.deepEqual(kinds(), ["note 4", "note 5", "note 6", "gap", "note 50", "note 51", "note 52"]);
  const gap = buf.messages.find((e) => e.kind === "gap");
  assert.equal(gap.from.msgid, "m6");
  assert.equal(gap.to.msgid, "m50");
  assert.equal(buf.historyDone, false);
  // A full page into the gap: the gap moves after it; a short one closes it.
  gap.limit = 2;
  buf.gapFilling = gap;
  feed(chat, ...batch(7, 8));
  assert.deepEqual(kinds(), ["note 4", "note 5", "note 6", "note 7", "note 8", "gap", "note 50", "note 51", "note 52"]);
  const next = buf.messages.find((e) => e.kind === "gap");
  next.limit = 100;
  buf.gapFilling = next;
  feed(chat, ...batch(9, 10));
  assert.deepEqual(kinds().slice(4), ["note 8", "note 9", "note 10", "note 50", "note 51", "note 52"]);
  // Around a message next to those loaded (overlapping them): no gap.
  buf.aroundPending = "m50";
  feed(chat, ...batch(11, 12, 50, 51));
  assert.ok(!buf.messages.some((e) => e.kind === "gap"));
  for (let i = 1; i < buf.messages.length; i++) assert.ok(buf.messages[i].seq > buf.messages[i - 1].seq);
});

test("a notification's click brings forward one of the chat's pages, not another page of the same site", () => {
  // The chat under a sub-path (behind a proxy), another app of the site beside it: clients.matchAll
  // ({includeUncontrolled: true}) lists every window of the origin, most recently focused first.
  const scope = "https://example.org/chat/";
  const wiki = { url: "https://example.org/wiki/Home", focused: false };
  const metrics = { url: "https://example.org/chat/metrics", focused: false };
  const chatPage = { url: "https://example.org/chat/#%23lobby", focused: false };
  assert.equal(chatWindow([wiki, metrics, chatPage], scope), chatPage);
  const focused = { url: "https://example.org/chat/index.html?x=1", focused: true };
  assert.equal(chatWindow([chatPage, wiki, focused], scope), focused);
  assert.equal(chatWindow([wiki, metrics], scope), null, "none of them: the chat is opened in a new window");
  assert.equal(chatWindow([{ url: "https://example.org/", focused: true }], scope), null);
});
