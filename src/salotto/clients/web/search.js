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

// A word as the server's index compares it: lower case, accents dropped ("Café" -> "cafe").
export function foldWord(word) {
  return word.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
}

// The words of a query, folded (each once). A word is a run of letters and digits, as the index cuts it.
export function searchWords(query) {
  return [...new Set((query.match(/[\p{L}\p{N}\p{M}]+/gu) || []).map(foldWord))];
}

// Where the words of the query are in text: [[start, end], ...] in order, each a whole word of the text
// equal to one of them (case and accents aside), as the server matched them.
export function matchRanges(text, query) {
  const wanted = new Set(searchWords(query));
  if (!wanted.size) return [];
  const ranges = [];
  for (const match of text.matchAll(/[\p{L}\p{N}\p{M}]+/gu)) {
    if (wanted.has(foldWord(match[0]))) ranges.push([match.index, match.index + match[0].length]);
  }
  return ranges;
}
