// The IRC connection over WebSocket (IRCv3 text.ircv3.net subprotocol): capability negotiation,
// registration, PING answers, a keepalive that notices a dead network, and reconnection.
//
// Events (on this EventTarget):
//   "message"  detail: a parsed message, for every line received (after the handling here)
//   "status"   detail: {state: "connecting"|"registered"|"waiting"|"stopped", retryInS?, reason?}
//   "fatal"    detail: {reason}: registration cannot succeed (bad nickname); no reconnection

import { formatMessage, parseMessage } from "./irc.js";

// Capabilities the page uses when the server offers them. draft/chathistory lights up scroll-back.
export const WANTED_CAPS = [
  "message-tags", "server-time", "echo-message", "batch", "multi-prefix", "away-notify",
  "labeled-response", "draft/chathistory", "draft/event-playback",
];
const BACKOFF_S = [1, 2, 4, 8, 15, 30];
// With nothing received for this long, send a PING; with nothing for twice that, the network is gone.
const KEEPALIVE_MS = 30000;

export class IrcConnection extends EventTarget {
  constructor(url, nick) {
    super();
    this.url = url;
    this.wantedNick = nick;
    this.nick = nick;
    this.caps = new Set();
    this.availableCaps = new Map();
    this.registered = false;
    this.everRegistered = false;
    this.stopped = false;
    this.attempt = 0;
    this.ws = null;
    this.retryTimer = null;
    this.keepaliveTimer = null;
    this.lastReceived = 0;
    this.nickTries = 0;
    window.addEventListener("online", () => this.retryNow());
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop(reason = "Leaving") {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.keepaliveTimer);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.sendRaw(formatMessage("QUIT", [reason]));
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.emit("status", { state: "stopped" });
  }

  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  open() {
    this.retryTimer = null;
    this.registered = false;
    this.caps = new Set();
    this.availableCaps = new Map();
    this.nick = this.wantedNick;
    this.nickTries = 0;
    this.emit("status", { state: "connecting" });
    let ws;
    try {
      ws = new WebSocket(this.url, ["text.ircv3.net"]);
    } catch (err) {
      this.scheduleRetry(String(err));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastReceived = Date.now();
      this.sendRaw("CAP LS 302");
      this.sendRaw(formatMessage("NICK", [this.nick]));
      this.sendRaw(formatMessage("USER", [this.nick, "0", "*", this.nick]));
      clearInterval(this.keepaliveTimer);
      this.keepaliveTimer = setInterval(() => this.keepalive(ws), KEEPALIVE_MS / 2);
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.lastReceived = Date.now();
      const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
      for (const line of text.split(/\r?\n/)) {
        if (line) this.receive(parseMessage(line));
      }
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.lost(event.reason || `connection closed (${event.code})`);
    };
  }

  keepalive(ws) {
    if (ws !== this.ws) return;
    const quiet = Date.now() - this.lastReceived;
    if (quiet > 2 * KEEPALIVE_MS) {
      ws.close();
      this.lost("no answer from the server");
    } else if (quiet > KEEPALIVE_MS) {
      this.sendRaw("PING :keepalive");
    }
  }

  lost(reason) {
    clearInterval(this.keepaliveTimer);
    if (this.ws) {
      this.ws.onclose = this.ws.onmessage = this.ws.onopen = null;
    }
    this.ws = null;
    this.registered = false;
    if (!this.stopped) this.scheduleRetry(reason);
  }

  scheduleRetry(reason) {
    const delay = BACKOFF_S[Math.min(this.attempt, BACKOFF_S.length - 1)];
    this.attempt++;
    this.emit("status", { state: "waiting", retryInS: delay, reason });
    this.retryTimer = setTimeout(() => this.open(), delay * 1000 * (0.8 + Math.random() * 0.4));
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  sendRaw(line) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(line);
    return true;
  }

  send(command, params, tags = null) {
    return this.sendRaw(formatMessage(command, params, tags));
  }

  receive(msg) {
    switch (msg.command) {
      case "PING":
        this.send("PONG", msg.params);
        break;
      case "CAP":
        this.onCap(msg);
        break;
      case "001":
        this.nick = msg.params[0];
        this.registered = true;
        this.everRegistered = true;
        this.attempt = 0;
        this.emit("status", { state: "registered" });
        break;
      case "432":
        if (!this.registered) {
          this.stop();
          this.emit("fatal", { reason: `“${this.wantedNick}” cannot be a nickname: ${msg.params.at(-1)}` });
          return;
        }
        break;
      case "433":
        if (!this.registered) {
          this.nickTries++;
          const base = this.wantedNick.slice(0, 28);
          this.nick = this.nickTries < 3 ? base + "_".repeat(this.nickTries) : base + Math.floor(Math.random() * 100);
          this.send("NICK", [this.nick]);
        }
        break;
      case "NICK":
        if (msg.source && msg.source.split("!")[0] === this.nick) this.nick = msg.params[0];
        break;
      default:
        break;
    }
    this.emit("message", msg);
  }

  onCap(msg) {
    const sub = (msg.params[1] || "").toUpperCase();
    const more = msg.params[2] === "*";
    const list = msg.params.at(-1) || "";
    if (sub === "LS" || sub === "NEW") {
      for (const item of list.split(" ")) {
        if (!item) continue;
        const eq = item.indexOf("=");
        this.availableCaps.set(eq < 0 ? item : item.slice(0, eq), eq < 0 ? "" : item.slice(eq + 1));
      }
      if (more) return;
      const wanted = WANTED_CAPS.filter((cap) => this.availableCaps.has(cap) && !this.caps.has(cap));
      if (wanted.length) this.send("CAP", ["REQ", wanted.join(" ")]);
      else if (sub === "LS") this.sendRaw("CAP END");
    } else if (sub === "ACK") {
      for (const item of list.split(" ")) {
        if (!item) continue;
        if (item.startsWith("-")) this.caps.delete(item.slice(1));
        else this.caps.add(item);
      }
      if (!this.registered) this.sendRaw("CAP END");
    } else if (sub === "NAK") {
      if (!this.registered) this.sendRaw("CAP END");
    } else if (sub === "DEL") {
      for (const item of list.split(" ")) this.caps.delete(item);
    }
  }
}
