// Searching the server's history (soju.im/search): the SEARCH attributes, and where the words matched
// in a result. No DOM here.

import { escapeTag } from "./irc.js";

// SEARCH's single parameter: attributes in message-tag form, values escaped as tag values are
// ("a b;c" -> "a\sb\:c"). Attributes with no value are left out.
export function searchAttrs(attrs) {
  return Object.entries(attrs)
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${escapeTag(String(v))}`)
    .join(";");
}

// The words of a query, for highlighting (quotes and FTS operators are not words).
export function searchWords(query) {
  return [...new Set(query.toLowerCase().split(/[\s"*()+:^-]+/).filter((w) => w && !["and", "or", "not"].includes(w)))];
}

// Where the words of the query occur in text: [[start, end], ...], sorted, not overlapping. A word
// matches at the start of a word of the text (as a full-text search does: "proj" finds "projector").
export function matchRanges(text, query) {
  const words = searchWords(query);
  if (!words.length) return [];
  const lower = text.toLowerCase();
  const ranges = [];
  for (const word of words) {
    let from = 0;
    for (;;) {
      const at = lower.indexOf(word, from);
      if (at < 0) break;
      const before = at === 0 ? "" : lower[at - 1];
      if (!before || !/[\p{L}\p{N}_]/u.test(before)) ranges.push([at, at + word.length]);
      from = at + word.length;
    }
  }
  ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const merged = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([...r]);
  }
  return merged;
}
