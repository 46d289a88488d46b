// irc.js: the pieces of a multiline message and the server's limits.
import assert from "node:assert/strict";
import test from "node:test";

import { byteLength, formatMessage, multilineLimits, multilinePieces, parseMessage } from "../../../src/salotto/clients/web/irc.js";

test("multiline limits from the capability's value", () => {
  assert.deepEqual(multilineLimits("max-bytes=4096,max-lines=100"), { maxBytes: 4096, maxLines: 100 });
  assert.deepEqual(multilineLimits("max-bytes=40"), { maxBytes: 40, maxLines: Infinity });
  assert.deepEqual(multilineLimits(""), { maxBytes: Infinity, maxLines: Infinity });
});

test("lines of a paste become pieces; blank lines at the ends go", () => {
  const limits = { maxBytes: 4096, maxLines: 100 };
  assert.deepEqual(multilinePieces("\nfirst\r\nsecond\n\nthird\n\n", limits, 300), [
    { text: "first", concat: false }, { text: "second", concat: false }, { text: "", concat: false },
    { text: "third", concat: false },
  ]);
});

test("a line longer than a PRIVMSG is cut into concat pieces that keep every character", () => {
  const long = "word ".repeat(100).trim();
  const pieces = multilinePieces(`short\n${long}`, { maxBytes: 4096, maxLines: 100 }, 120);
  assert.equal(pieces[0].text, "short");
  assert.ok(pieces.slice(2).every((p) => p.concat) && !pieces[1].concat);
  assert.ok(pieces.every((p) => byteLength(p.text) <= 120));
  assert.equal(pieces.slice(1).map((p) => p.text).join(""), long);
});

test("over max-bytes or max-lines: null (sent as separate lines instead)", () => {
  assert.equal(multilinePieces("a\nb\nc", { maxBytes: 4096, maxLines: 2 }, 300), null);
  assert.equal(multilinePieces("aaaa\nbbbb", { maxBytes: 8, maxLines: 10 }, 300), null);
  assert.ok(multilinePieces("aaaa\nbbbb", { maxBytes: 9, maxLines: 10 }, 300));
});

test("reply and reaction tags survive the round trip", () => {
  const line = formatMessage("TAGMSG", ["#lobby"], { "+draft/react": "👍", "+draft/reply": "abc;d e" });
  const msg = parseMessage(line);
  assert.equal(msg.tags["+draft/react"], "👍");
  assert.equal(msg.tags["+draft/reply"], "abc;d e");
});
