// IRC messages as data: parse a line into {tags, source, command, params} and back.
// Modern IRC (https://modern.ircdocs.horse/) and IRCv3 message-tags escaping.

const TAG_UNESCAPES = { ":": ";", s: " ", "\\": "\\", r: "\r", n: "\n" };
const TAG_ESCAPES = { "\\": "\\\\", ";": "\\:", " ": "\\s", "\r": "\\r", "\n": "\\n" };

export function unescapeTag(value) {
  return value.replace(/\\(.?)/g, (_, c) => (c in TAG_UNESCAPES ? TAG_UNESCAPES[c] : c));
}

export function escapeTag(value) {
  return value.replace(/[\\; \r\n]/g, (c) => TAG_ESCAPES[c]);
}

function skipSpaces(text) {
  let i = 0;
  while (text[i] === " ") i++;
  return text.slice(i);
}

export function parseMessage(line) {
  const msg = { tags: {}, source: null, command: "", params: [] };
  let rest = line.replace(/[\r\n]+$/, "");
  if (rest.startsWith("@")) {
    const space = rest.indexOf(" ");
    const raw = rest.slice(1, space < 0 ? rest.length : space);
    for (const item of raw.split(";")) {
      if (!item) continue;
      const eq = item.indexOf("=");
      if (eq < 0) msg.tags[item] = "";
      else msg.tags[item.slice(0, eq)] = unescapeTag(item.slice(eq + 1));
    }
    rest = space < 0 ? "" : skipSpaces(rest.slice(space + 1));
  }
  if (rest.startsWith(":")) {
    const space = rest.indexOf(" ");
    msg.source = rest.slice(1, space < 0 ? rest.length : space);
    rest = space < 0 ? "" : skipSpaces(rest.slice(space + 1));
  }
  const words = [];
  while (rest.length) {
    if (rest.startsWith(":") && words.length) {
      words.push(rest.slice(1));
      break;
    }
    const space = rest.indexOf(" ");
    if (space < 0) {
      words.push(rest);
      break;
    }
    words.push(rest.slice(0, space));
    rest = skipSpaces(rest.slice(space + 1));
  }
  msg.command = (words.shift() || "").toUpperCase();
  msg.params = words;
  return msg;
}

// CR, LF and NUL would end the line early or be refused: a user's text never carries them.
function clean(text) {
  return String(text).replace(/[\r\n\0]/g, " ");
}

export function formatMessage(command, params = [], tags = null) {
  let line = "";
  if (tags) {
    const items = Object.entries(tags).map(([k, v]) => (v === "" || v == null ? k : `${k}=${escapeTag(String(v))}`));
    if (items.length) line += "@" + items.join(";") + " ";
  }
  line += command;
  params.forEach((param, i) => {
    const p = clean(param);
    const last = i === params.length - 1;
    if (last && (p === "" || p.includes(" ") || p.startsWith(":"))) line += " :" + p;
    else line += " " + p.replace(/ /g, "");
  });
  return line;
}

export function nickOf(source) {
  if (!source) return "";
  const bang = source.indexOf("!");
  return bang < 0 ? source : source.slice(0, bang);
}

// CASEMAPPING from ISUPPORT: how two names compare equal.
export function casefolder(mapping) {
  if (mapping === "ascii") return (s) => s.toLowerCase();
  const strict = mapping === "strict-rfc1459";
  return (s) => {
    let out = "";
    for (const c of s) {
      if (c >= "A" && c <= "Z") out += c.toLowerCase();
      else if (c === "[") out += "{";
      else if (c === "]") out += "}";
      else if (c === "\\") out += "|";
      else if (c === "~" && !strict) out += "^";
      else out += c;
    }
    return out;
  };
}

// mIRC formatting codes (bold, colours, ...): dropped for display, the text stays.
export function stripFormatting(text) {
  return text.replace(/\x03(\d{1,2}(,\d{1,2})?)?|\x04([0-9a-fA-F]{6}(,[0-9a-fA-F]{6})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]/g, "");
}

// UTF-8 length, for keeping what we send under the 512-byte line limit.
export function byteLength(text) {
  return new TextEncoder().encode(text).length;
}

// Cut text into pieces of at most maxBytes UTF-8 bytes, at a space when one is near.
export function splitText(text, maxBytes) {
  const pieces = [];
  let rest = text;
  while (byteLength(rest) > maxBytes) {
    let cut = 0;
    let bytes = 0;
    for (const ch of rest) {
      const n = byteLength(ch);
      if (bytes + n > maxBytes) break;
      bytes += n;
      cut += ch.length;
    }
    const space = rest.lastIndexOf(" ", cut);
    if (space > cut / 2) cut = space;
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut).replace(/^ /, "");
  }
  if (rest || !pieces.length) pieces.push(rest);
  return pieces;
}

// draft/multiline's value, "max-bytes=4096,max-lines=100": {maxBytes, maxLines} (Infinity when absent).
export function multilineLimits(value) {
  const limits = { maxBytes: Infinity, maxLines: Infinity };
  for (const item of (value || "").split(",")) {
    const [key, number] = item.split("=");
    const n = Number.parseInt(number, 10);
    if (!(n > 0)) continue;
    if (key === "max-bytes") limits.maxBytes = n;
    else if (key === "max-lines") limits.maxLines = n;
  }
  return limits;
}

// The lines of a multiline message (text with newlines) as the PRIVMSGs of a draft/multiline batch:
// [{text, concat}], each at most maxBytes long (a longer line is cut, the pieces after the first
// marked draft/multiline-concat and carrying their spaces as they were). Empty lines at either end
// are left out. null when the message is over the server's limits (then it goes as separate lines).
export function multilinePieces(text, limits, maxBytes) {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  while (lines.length && !lines[0].trim()) lines.shift();
  while (lines.length && !lines.at(-1).trim()) lines.pop();
  if (!lines.length) return null;
  const pieces = [];
  let total = 0;
  for (const line of lines) {
    total += byteLength(line);
    let rest = line;
    let concat = false;
    do {
      let cut = rest.length;
      if (byteLength(rest) > maxBytes) {
        let bytes = 0;
        cut = 0;
        for (const ch of rest) {
          const n = byteLength(ch);
          if (bytes + n > maxBytes) break;
          bytes += n;
          cut += ch.length;
        }
        const space = rest.lastIndexOf(" ", cut - 1);
        if (space > cut / 2) cut = space + 1;
      }
      pieces.push({ text: rest.slice(0, cut), concat });
      rest = rest.slice(cut);
      concat = true;
    } while (rest);
  }
  total += lines.length - 1; // the newlines between them
  if (total > limits.maxBytes || pieces.length > limits.maxLines) return null;
  return pieces;
}

// sasl-3.1: an AUTHENTICATE payload travels base64-encoded in pieces of 400 bytes; a last piece of
// exactly 400 (or an empty payload) is followed by "+" so the server knows it has everything.
export const SASL_CHUNK_BYTES = 400;

function base64(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

// The AUTHENTICATE parameters that carry a SASL PLAIN login (RFC 4616: authzid NUL authcid NUL
// password, with an empty authzid: log in as the account itself).
export function saslPlainChunks(account, password) {
  const encoded = base64(`\0${account}\0${password}`);
  const chunks = [];
  for (let i = 0; i < encoded.length; i += SASL_CHUNK_BYTES) chunks.push(encoded.slice(i, i + SASL_CHUNK_BYTES));
  if (!chunks.length || chunks.at(-1).length === SASL_CHUNK_BYTES) chunks.push("+");
  return chunks;
}
