// The IRC connection over WebSocket (IRCv3 text.ircv3.net subprotocol): capability negotiation,
// logging in (SASL PLAIN) or creating the account (draft/account-registration) before CAP END,
// registration, PING answers, a keepalive that notices a dead network, and reconnection.
//
// Events (on this EventTarget):
//   "message"  detail: a parsed message, for every line received (after the handling here)
//   "status"   detail: {state: "connecting"|"registered"|"waiting"|"stopped", retryInS?, reason?}
//   "fatal"    detail: {reason, field}: registration cannot succeed (bad nickname, wrong password);
//              no reconnection. field: the form field to correct ("nick", "password" or
//              "server-password": a private server's PASS was missing or wrong, 464).
//
// The passwords (the account's, the server's) live only in this object (memory), for logging in again
// after a reconnection.

import { formatMessage, parseMessage, saslPlainChunks } from "./irc.js";

// Capabilities the page uses when the server offers them. draft/chathistory lights up scroll-back,
// soju.im/search the search panel, soju.im/webpush (or draft/webpush) notifications on this device.
export const WANTED_CAPS = [
  "message-tags", "server-time", "echo-message", "batch", "multi-prefix", "away-notify",
  "labeled-response", "draft/chathistory", "draft/event-playback", "draft/message-redaction",
  "draft/read-marker", "draft/multiline", "soju.im/search", "soju.im/webpush", "draft/webpush",
];
// Numerics that end a SASL attempt without logging in (sasl-3.1): nick locked, failed, too long, aborted.
const SASL_FAILURES = new Set(["902", "904", "905", "906"]);
// FAIL REGISTER codes that call for another nickname rather than another password.
const NICK_PROBLEMS = new Set(["ACCOUNT_EXISTS", "BAD_ACCOUNT_NAME", "ACCOUNT_NAME_MUST_BE_NICK", "NEED_NICK"]);
const BACKOFF_S = [1, 2, 4, 8, 15, 30];
// With nothing received for this long, send a PING; with nothing for twice that, the network is gone.
const KEEPALIVE_MS = 30000;

export class IrcConnection extends EventTarget {
  // auth: null (a guest), or {password, register}: log in to the account named like the nick, or
  // create it (register) and from then on log in to it.
  constructor(url, nick, auth = null, serverPassword = null) {
    super();
    this.url = url;
    this.wantedNick = nick;
    this.password = auth ? auth.password : null;
    this.serverPassword = serverPassword || null; // PASS, for a private server
    this.registerAccount = !!(auth && auth.register);
    this.authPending = null; // "sasl" | "register": CAP END waits for the answer
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
    this.password = this.serverPassword = null; // a stopped connection never logs in again: nothing to keep
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
    this.authPending = null;
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
      if (this.serverPassword) this.send("PASS", [this.serverPassword]);
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
        // A server that takes REGISTER only once connected (no "before-connect"): now.
        if (this.password && this.registerAccount) {
          this.registerAccount = false;
          this.send("REGISTER", ["*", "*", this.password]);
        }
        break;
      case "464": // ERR_PASSWDMISMATCH: the server's password, missing or wrong (the server closes next)
        if (!this.registered) {
          this.fail(this.serverPassword
            ? `The server password was refused: ${msg.params.at(-1)}`
            : "This server is private: enter its password (ask whoever runs it).", "server-password");
          return;
        }
        break;
      case "432":
        if (!this.registered) {
          this.fail(`“${this.wantedNick}” cannot be a nickname: ${msg.params.at(-1)}`, "nick");
          return;
        }
        break;
      case "433":
        if (!this.registered && this.password && this.registerAccount) {
          // The account is named after the nick: registering another one (alice_) is not what was asked.
          this.fail(`“${this.wantedNick}” is in use right now, so it cannot be registered: choose another nickname.`, "nick");
          return;
        }
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
      case "AUTHENTICATE":
        if (this.authPending === "sasl" && msg.params[0] === "+") {
          for (const chunk of saslPlainChunks(this.wantedNick, this.password)) this.send("AUTHENTICATE", [chunk]);
        }
        break;
      case "903": // logged in (900 came just before)
      case "907": // already logged in
        if (this.authPending === "sasl") this.authDone();
        break;
      case "REGISTER": // REGISTER SUCCESS|VERIFICATION_REQUIRED <account> <message>
        if (this.authPending === "register") {
          this.registerAccount = false; // the account exists: a reconnection logs in to it
          this.authDone();
        }
        break;
      case "FAIL":
        if (this.authPending === "register" && msg.params[0] === "REGISTER") {
          const field = NICK_PROBLEMS.has(msg.params[1]) ? "nick" : "password";
          this.fail(`Could not register “${this.wantedNick}”: ${msg.params.at(-1)}`, field);
          return;
        }
        break;
      default:
        if (this.authPending === "sasl" && SASL_FAILURES.has(msg.command)) {
          this.fail(`Could not log in as “${this.wantedNick}”: ${msg.params.at(-1)}`, "password");
          return;
        }
        break;
    }
    this.emit("message", msg);
  }

  // Registration cannot go on as asked: leave (no half-open connection, no retry) and say why.
  fail(reason, field) {
    this.stop();
    this.emit("fatal", { reason, field });
  }

  // The caps are settled; before CAP END, log in or create the account when a password was given.
  capsSettled() {
    if (this.registered || this.authPending) return;
    if (this.password && this.registerAccount) {
      const registration = this.availableCaps.get("draft/account-registration");
      if (registration === undefined) {
        this.fail("This server does not let you register an account.", "password");
        return;
      }
      // The capability is not requested (the spec says so): its value says when REGISTER is taken.
      if (registration.split(",").includes("before-connect")) {
        this.authPending = "register";
        this.send("REGISTER", ["*", "*", this.password]);
        return;
      }
    } else if (this.password) {
      const mechanisms = this.availableCaps.get("sasl");
      if (!this.caps.has("sasl") || (mechanisms && !mechanisms.split(",").includes("PLAIN"))) {
        this.fail("This server does not offer logging in with a password (SASL PLAIN).", "password");
        return;
      }
      this.authPending = "sasl";
      this.sendRaw("AUTHENTICATE PLAIN");
      return;
    }
    this.sendRaw("CAP END");
  }

  authDone() {
    this.authPending = null;
    if (!this.registered) this.sendRaw("CAP END");
  }

  wantedCaps() {
    return this.password && !this.registerAccount ? [...WANTED_CAPS, "sasl"] : WANTED_CAPS;
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
      const wanted = this.wantedCaps().filter((cap) => this.availableCaps.has(cap) && !this.caps.has(cap));
      if (wanted.length) this.send("CAP", ["REQ", wanted.join(" ")]);
      else if (sub === "LS") this.capsSettled();
    } else if (sub === "ACK") {
      for (const item of list.split(" ")) {
        if (!item) continue;
        if (item.startsWith("-")) this.caps.delete(item.slice(1));
        else this.caps.add(item);
      }
      this.capsSettled();
    } else if (sub === "NAK") {
      this.capsSettled();
    } else if (sub === "DEL") {
      for (const item of list.split(" ")) this.caps.delete(item);
    }
  }
}
