// Highlighting a query in code, by whole tokens: the way the lexical index matches
// (pipeline/search/lexical.py), never a fragment inside a word.
//
// The text is cut into tokens (runs of letters, digits, marks and "_"); each identifier
// also counts through its parts (snake_case and camelCase split, as lexical_text does).
// A token is marked, whole, when it or one of its parts is a word of the query: for
// "timeout", `timeout`, `connect_timeout` and `TimeoutSauce` are marked end to end, and
// `isinstance` is never marked for "an". Every mark starts and ends at a token's edge.

import { h } from "./dom.js";

const TOKEN = /[\p{L}\p{N}\p{M}_]+/gu;
// pipeline/search/lexical.py's _PART: an acronym, a word, or a run of digits
const PART = /[A-Z]+(?![a-z])[0-9]*|[A-Z]?[a-z]+[0-9]*|[0-9]+/g;
const ASCII = /^[\x00-\x7f]*$/;
// pipeline/search/query.py's STOP_WORDS: dropped from the query unless nothing else is left
const STOP_WORDS = new Set(`a about above after again all also am an and any are as at be
  been before being below between both but by can could did do does doing down during each
  few for from further had has have having he her here hers him his how i if in into is it
  its itself just me more most my no nor not now of off on once only or other our out over
  own same she should so some such than that the their theirs them then there these they
  this those through to too under until up very was we were what when where which while
  who whom why will with would you your given using used use`.split(/\s+/));

function trimmed(token) {
  return token.replace(/^_+|_+$/g, "");
}

/** The lower-case words of one identifier: ``HTTPServer`` -> ``["http", "server"]``. */
export function identifierParts(identifier) {
  const core = trimmed(identifier);
  const segments = core.split("_").filter(Boolean);
  if (!ASCII.test(core)) return segments.map((segment) => segment.toLowerCase());
  return segments.flatMap((segment) => segment.match(PART) || []).map((p) => p.toLowerCase());
}

/** A token's forms: itself (lower case, no edge underscores), then its parts. */
function forms(token) {
  const whole = trimmed(token).toLowerCase();
  if (!whole) return [];
  const parts = identifierParts(token);
  return parts.length > 1 ? [whole, ...parts] : [whole];
}

/** The words of a query that a token may match: identifiers whole and split, stop
 * words dropped unless nothing else is left (as the lexical retriever reads it). */
export function queryTerms(query) {
  const words = [...new Set((String(query).match(TOKEN) || []).flatMap(forms))];
  const kept = words.filter((word) => !STOP_WORDS.has(word));
  return kept.length ? kept : words;
}

/** ``[start, end)`` of each token of ``text`` that matches one of ``terms``. */
export function highlightRanges(text, terms) {
  const wanted = new Set(terms);
  const ranges = [];
  if (!wanted.size) return ranges;
  for (const found of String(text).matchAll(TOKEN)) {
    if (forms(found[0]).some((form) => wanted.has(form))) {
      ranges.push([found.index, found.index + found[0].length]);
    }
  }
  return ranges;
}

/** ``text`` as text nodes, each matching token in a <mark> (text, never HTML). */
export function highlighted(text, terms) {
  const source = String(text);
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const [start, end] of highlightRanges(source, terms)) {
    if (start > last) fragment.append(source.slice(last, start));
    fragment.append(h("mark", {}, source.slice(start, end)));
    last = end;
  }
  if (last < source.length) fragment.append(source.slice(last));
  return fragment;
}
