// Lines in, a Chat out: the model fed as the page feeds it, from IRC lines.
import { parseMessage } from "../../../src/salotto/clients/web/irc.js";
import { Chat } from "../../../src/salotto/clients/web/model.js";

export function chatAs(nick = "me", caps = ["message-tags", "echo-message", "batch", "server-time"]) {
  const chat = new Chat();
  chat.caps = new Set(caps);
  feed(chat, `:srv 001 ${nick} :Welcome`);
  return chat;
}

export function feed(chat, ...lines) {
  for (const line of lines) chat.handle(parseMessage(line));
}

// A PRIVMSG line with a msgid and a server-time, seconds after a fixed start.
export function privmsg(from, target, text, { msgid, at = 0, tags = {} } = {}) {
  const time = new Date(Date.UTC(2026, 0, 1, 12, 0, at)).toISOString();
  const all = { msgid: msgid || `m-${from}-${at}`, time, ...tags };
  const tagText = Object.entries(all).map(([k, v]) => (v === "" ? k : `${k}=${v}`)).join(";");
  return `@${tagText} :${from}!u@h PRIVMSG ${target} :${text}`;
}

export function texts(buf) {
  return buf.messages.filter((e) => e.msgid).map((e) => e.text);
}
