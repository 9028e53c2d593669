// Lunaria receipt verifier: everything is checked here, in the browser, with WebCrypto.
//
// The server only hands out the page, the latest checkpoint and consistency proofs; it never
// says whether a receipt is valid. The steps, each of which names exactly what failed:
//
//   1. read the receipt: receipt JSON, or c2sp.org/tlog-proof@v1 text (+ the entry);
//   2. leaf hash = SHA-256(0x00 || entry bytes)          (RFC 9162 §2.1.1), equal to the stated one;
//   3. the inclusion proof leads from that leaf to the checkpoint's root  (RFC 9162 §2.1.3.2);
//   4. the checkpoint (C2SP signed note) carries a valid Ed25519 signature by the key to trust;
//      then, when witness keys are given, each one's cosignature/v1 line (C2SP
//      tlog-cosignature) is checked and at least `quorum` of them must have cosigned;
//   5. the latest checkpoint (fetched, signed by the same key) is consistent with it
//      (RFC 9162 §2.1.4.2);
//   6. each public text the receipt carries beside the entry (`texts`, entry data version 2)
//      recomputes the commitment the entry holds:
//      SHA-256("lunaria/public-text/v1" || 0x00 || salt || UTF-8 text).
//
// Receipt JSON, as ledger/receipts.py writes it (`lunaria receipt N`, /api/v1/receipts/N):
//   {"entry": {...}, "entry_b64": "<the exact bytes that were hashed, base64>", "seq": 5,
//    "leaf_hash": "<hex>",
//    "proof": {"index": 5, "size": 10, "leaf_hash": "<hex>", "hashes": ["<hex>", ...]},
//    "checkpoint": "<the signed checkpoint note, verbatim>", "vkey": "<verifier key string>",
//    "texts": {"purpose": {"commitment": "<hex>", "text": "…", "salt": "<hex>",
//                          "redacted_seq": null}}}          (texts only for public text)
// The entry's bytes are entry_b64 (which must equal the canonical form of "entry"), else the
// entry re-canonicalised here (or given as text). The vkey is a hint and never trusted: the
// signature is checked against the key in the page's "key to trust" field.
// A c2sp.org/tlog-proof@v1 receipt carries the entry's bytes on its `extra` line; one without
// it verifies when the entry is pasted separately.
//
// The algorithms are ported line by line from ledger/merkle.py and ledger/notes.py; tree
// sizes and indexes are BigInts, so nothing is lost above 2^31 (or 2^53).

const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";
const HASH_SIZE = 32;
const MAX_SIGNATURES = 100;
const ALG_ED25519 = 0x01;
const SIGNATURE_PREFIX = "\u2014 ";
const CHECKPOINT_URL = "/api/v1/ledger/checkpoint";
const TEXT_DOMAIN = "lunaria/public-text/v1";
const CONSISTENCY_URL = "/api/v1/ledger/proofs/consistency";

/**
 * What exactly failed, with the values involved: an English `template` with `{name}`
 * placeholders (the page shows its translation, found by the same template) and `params`.
 */
export function d(template, params = {}) {
  return { template, params };
}

/** Fill `{name}` placeholders from `params` (unknown names stay as they are). */
export function fill(template, params = {}) {
  return template.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

/**
 * A named failure: `key` selects the translated message, `params` fill it; `detail` says in
 * English which values (`why`, from d(), lets the page say it in the reader's language).
 */
export class VerifyError extends Error {
  constructor(key, params = {}, why = null) {
    const detail = why === null ? "" : typeof why === "string" ? why : fill(why.template, why.params);
    super(`${key}${detail ? ": " + detail : ""}`);
    this.key = key;
    this.params = params;
    this.detail = detail;
    this.why = typeof why === "string" ? null : why;
  }
}

// -- bytes --------------------------------------------------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text, what) {
  if (typeof text !== "string" || !/^([0-9a-fA-F]{2})*$/.test(text)) {
    throw new VerifyError("malformed", {}, d("{what} is not hex: {value}", { what, value: show(text) }));
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
  return out;
}

function toBase64(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Strict standard padded base64: only the canonical encoding of its bytes, else null. */
export function fromBase64(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
    return null;
  }
  let binary;
  try {
    binary = atob(text);
  } catch {
    return null;
  }
  const out = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return toBase64(out) === text ? out : null;
}

function show(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return text.length > 80 ? JSON.stringify(text.slice(0, 80)) + "…" : JSON.stringify(text);
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// -- RFC 9162 Merkle tree (ledger/merkle.py) ------------------------------------------------

export async function leafHash(data) {
  return sha256(concat(new Uint8Array([0x00]), data));
}

export async function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([0x01]), left, right));
}

export const EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

function checkHashes(what, hashes) {
  hashes.forEach((h, i) => {
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
      throw new VerifyError("proof_shape", {}, d("{what} hash {i} is not {bytes} bytes", { what, i, bytes: HASH_SIZE }));
    }
  });
}

function rightShiftUntilSet(fn, sn) {
  while (!(fn & 1n) && fn !== 0n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  return [fn, sn];
}

/** RFC 9162 §2.1.3.2 steps 1-5: the root implied by an inclusion proof. */
export async function rootFromInclusionProof(index, size, leaf, proof) {
  if (index < 0n || size < 1n || index >= size) {
    throw new VerifyError("proof_shape", {}, d("index {index} is not below tree size {size}", { index, size }));
  }
  checkHashes("leaf", [leaf]);
  checkHashes("proof", proof);
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) {
      throw new VerifyError(
        "proof_shape", {}, d("inclusion proof has {count} hashes: too many for this size", { count: proof.length }));
    }
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      [fn, sn] = rightShiftUntilSet(fn, sn);
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) {
    throw new VerifyError(
      "proof_shape", {}, d("inclusion proof has {count} hashes: too few for this size", { count: proof.length }));
  }
  return r;
}

/** RFC 9162 §2.1.4.2; throws VerifyError("consistency") unless old is a prefix of new. */
export async function verifyConsistency(oldSize, newSize, proof, oldRoot, newRoot) {
  const fail = (detail) => new VerifyError("consistency", {}, detail);
  checkHashes("root", [oldRoot, newRoot]);
  checkHashes("proof", proof);
  if (oldSize < 0n || oldSize > newSize) {
    throw fail(d("old size {old} is larger than new size {new}", { old: oldSize, new: newSize }));
  }
  if (oldSize === 0n && toHex(oldRoot) !== EMPTY_ROOT_HEX) {
    throw fail(d("the root of the empty tree is {empty}, not {root}", { empty: EMPTY_ROOT_HEX, root: toHex(oldRoot) }));
  }
  if (oldSize === newSize) {
    if (proof.length) throw fail(d("a consistency proof between equal sizes must be empty"));
    if (!equalBytes(oldRoot, newRoot)) throw fail(d("different roots for the same size {old}", { old: oldSize }));
    return;
  }
  if (oldSize === 0n) {
    if (proof.length) throw fail(d("a consistency proof from the empty tree must be empty"));
    return;
  }
  if (!proof.length) throw fail(d("consistency proof is empty"));
  const path = [...proof];
  if ((oldSize & (oldSize - 1n)) === 0n) path.unshift(oldRoot); // a power of two: a node
  let fn = oldSize - 1n;
  let sn = newSize - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw fail(d("consistency proof is too long"));
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      [fn, sn] = rightShiftUntilSet(fn, sn);
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw fail(d("consistency proof is too short"));
  if (!equalBytes(fr, oldRoot)) {
    throw fail(d("proof gives old root {got}, expected {root}", { got: toHex(fr), root: toHex(oldRoot) }));
  }
  if (!equalBytes(sr, newRoot)) {
    throw fail(d("proof gives new root {got}, expected {want}", { got: toHex(sr), want: toHex(newRoot) }));
  }
}

// -- C2SP signed notes and checkpoints (ledger/notes.py) ------------------------------------

const CONTROL = /[\x00-\x09\x0b-\x1f]/;

function validName(name) {
  return Boolean(name) && !name.includes("+") && !/\s/u.test(name) && !CONTROL.test(name);
}

/** Key id: SHA-256(name || 0x0A || alg || public key)[:4] (0x01 Ed25519, 0x04 cosignatures). */
export async function keyId(name, publicKey, alg = ALG_ED25519) {
  const digest = await sha256(concat(encoder.encode(name + "\n"), new Uint8Array([alg]),
    publicKey));
  return digest.slice(0, 4);
}

/** Parse `<name>+<8 hex key id>+<base64(alg || public key)>`; checks the key id. */
export async function parseVkey(vkey, alg = ALG_ED25519) {
  const fail = (detail) => new VerifyError("vkey", {}, detail);
  if (typeof vkey !== "string" || !vkey.trim()) throw fail(d("no key given"));
  vkey = vkey.trim();
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw fail(d("not <name>+<key id>+<key>: {value}", { value: show(vkey) }));
  const name = vkey.slice(0, first);
  const idHex = vkey.slice(first + 1, second);
  const material = fromBase64(vkey.slice(second + 1));
  if (!validName(name)) throw fail(d("invalid key name {value}", { value: show(name) }));
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw fail(d("key id {value} is not 8 hex digits", { value: show(idHex) }));
  if (material === null) throw fail(d("the key is not canonical padded base64"));
  if (material.length !== 33 || material[0] !== alg) {
    throw fail(alg === ALG_ED25519 ? d("not an Ed25519 (0x01) key of 32 bytes")
      : d("not an Ed25519 cosignature (0x04) key of 32 bytes"));
  }
  const publicKey = material.slice(1);
  const expected = await keyId(name, publicKey, alg);
  if (toHex(expected) !== idHex) {
    throw fail(d("key id {id} does not match the key, which has key id {expected}", { id: idHex, expected: toHex(expected) }));
  }
  return { name, keyId: expected, publicKey, label: `${name}+${idHex}` };
}

/** Split a signed note at the LAST blank line into its text and signature lines. */
export function parseNote(data) {
  const fail = (detail) => new VerifyError("checkpoint", {}, detail);
  const control = CONTROL.exec(data);
  if (control) throw fail(d("control character at offset {offset}", { offset: control.index }));
  const split = data.lastIndexOf("\n\n");
  if (split < 0) throw fail(d("no blank line separating text and signatures"));
  const text = data.slice(0, split + 1);
  const block = data.slice(split + 2);
  if (!block) throw fail(d("no signature lines after the last blank line"));
  if (!block.endsWith("\n")) throw fail(d("the note does not end with a newline"));
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw fail(d("{count} signature lines", { count: lines.length }));
  const signatures = lines.map((line, i) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) {
      throw fail(d("signature line {line} does not start with an em dash and a space", { line: i + 1 }));
    }
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(" ");
    const name = space < 0 ? rest : rest.slice(0, space);
    const blob = space < 0 ? null : fromBase64(rest.slice(space + 1));
    if (!validName(name)) throw fail(d("signature line {line} has an invalid key name", { line: i + 1 }));
    if (blob === null) throw fail(d("signature line {line} is not canonical padded base64", { line: i + 1 }));
    if (blob.length <= 4) throw fail(d("signature line {line} is too short", { line: i + 1 }));
    return { name, keyId: blob.slice(0, 4), signature: blob.slice(4) };
  });
  return { text, signatures };
}

/** Parse a tlog-checkpoint body: origin, decimal size, base64 root, extension lines. */
export function parseCheckpointBody(body) {
  const fail = (detail) => new VerifyError("checkpoint", {}, detail);
  if (!body.endsWith("\n")) throw fail(d("the checkpoint does not end with a newline"));
  const lines = body.slice(0, -1).split("\n");
  if (lines.length < 3) throw fail(d("{count} lines; need origin, size and root hash", { count: lines.length }));
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (!origin) throw fail(d("empty origin"));
  if (extensions.some((line) => !line)) throw fail(d("an empty extension line"));
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText) || sizeText.length > 19) {
    throw fail(d("tree size {value} is not a decimal without leading zeros", { value: show(sizeText) }));
  }
  const size = BigInt(sizeText);
  if (size >= 2n ** 63n) throw fail(d("tree size {value} is too large", { value: sizeText }));
  const root = fromBase64(rootText);
  if (root === null || root.length !== HASH_SIZE) {
    throw fail(d("root hash {value} is not 32 bytes of canonical base64", { value: show(rootText) }));
  }
  return { origin, size, root };
}

/** Whether `key` (from parseVkey) validly signed `note`; throws VerifyError("signature"). */
export async function checkSignature(note, key) {
  const params = { key: key.label };
  const mine = note.signatures.filter(
    (s) => s.name === key.name && equalBytes(s.keyId, key.keyId));
  if (!mine.length) {
    const found = note.signatures.map((s) => `${s.name}+${toHex(s.keyId)}`).join(", ");
    throw new VerifyError("signature", params, d("no signature by this key; signed by {found}", { found }));
  }
  let publicKey;
  try {
    publicKey = await crypto.subtle.importKey(
      "raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    throw new VerifyError("webcrypto", {}, String(error));
  }
  for (const s of mine) {
    const valid = s.signature.length === 64 && await crypto.subtle.verify(
      { name: "Ed25519" }, publicKey, s.signature, encoder.encode(note.text));
    if (!valid) {
      throw new VerifyError("signature", params, d("the Ed25519 signature does not verify"));
    }
  }
}

/** Parse, check origin and signature: the checkpoint a signed note commits to. */
export async function openCheckpoint(noteText, key, origin) {
  const note = parseNote(noteText);
  const checkpoint = parseCheckpointBody(note.text);
  if (origin && checkpoint.origin !== origin) {
    throw new VerifyError("origin", { got: checkpoint.origin, want: origin });
  }
  await checkSignature(note, key);
  return checkpoint;
}

// -- C2SP tlog-cosignature v1 (ledger/log/cosignature.py) ------------------------------------

const ALG_COSIGNATURE_V1 = 0x04;

/** A witness's verifier key: `<name>+<8 hex key id>+<base64(0x04 || public key)>`. */
export async function parseWitnessVkey(vkey) {
  return parseVkey(vkey, ALG_COSIGNATURE_V1);
}

/** The witness keys of the page's field: the first word of each line (so the lines of a
 * LUNARIA_WITNESSES file, `VKEY URL`, paste as they are); blank lines and `#` comments
 * skipped. Resolves to parsed keys; a bad one is named by its line. */
export async function parseWitnessList(text) {
  const keys = [];
  const lines = (text || "").split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    const word = line.trim().split(/\s+/)[0];
    if (!word || word.startsWith("#")) continue;
    try {
      keys.push(await parseWitnessVkey(word));
    } catch (error) {
      if (!(error instanceof VerifyError)) throw error;
      throw new VerifyError("witness_vkey", { line: i + 1 }, error.why ?? error.detail);
    }
  }
  return keys;
}

/** The quorum field: empty is null (all the witnesses given), else a whole number. */
export function parseQuorum(text) {
  const value = (text ?? "").trim();
  if (!value) return null;
  if (!/^(0|[1-9][0-9]{0,5})$/.test(value)) throw new VerifyError("quorum_value", { value });
  return Number(value);
}

/** The time `s` says it was made if it is `key`'s valid v1 cosignature of the note (POSIX
 * seconds, a BigInt), else null: a u64 big-endian timestamp, then Ed25519 over
 * "cosignature/v1\n", "time <timestamp>\n" and the note's text. */
async function cosignatureTime(note, s, key) {
  if (s.signature.length !== 8 + 64) return null;
  const timestamp = new DataView(s.signature.buffer, s.signature.byteOffset, 8).getBigUint64(0);
  if (timestamp >= 2n ** 63n) return null;
  let publicKey;
  try {
    publicKey = await crypto.subtle.importKey(
      "raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    throw new VerifyError("webcrypto", {}, String(error));
  }
  const message = encoder.encode(`cosignature/v1\ntime ${timestamp}\n${note.text}`);
  const valid = await crypto.subtle.verify(
    { name: "Ed25519" }, publicKey, s.signature.slice(8), message);
  return valid ? timestamp : null;
}

/** Each distinct witness of `witnesses` (from parseWitnessVkey) with its cosignature on `note`:
 * [{key, label, time}], `time` the POSIX seconds it cosigned (a BigInt) or null when it did
 * not. The first line under a witness's name and key id is its cosignature; one that does not
 * verify throws VerifyError("cosignature"): the note is then invalid, as in
 * ledger/log/cosignature.py. */
export async function witnessCosignatures(note, witnesses) {
  const unique = [...new Map(witnesses.map((key) => [key.label, key])).values()];
  const found = [];
  for (const key of unique) {
    const line = note.signatures.find(
      (s) => s.name === key.name && equalBytes(s.keyId, key.keyId));
    let time = null;
    if (line) {
      time = await cosignatureTime(note, line, key);
      if (time === null) {
        throw new VerifyError("cosignature", { key: key.label },
          d("the line of {key} is not its Ed25519 cosignature of this checkpoint", { key: key.label }));
      }
    }
    found.push({ key, label: key.label, time });
  }
  return found;
}

/** The labels of the known witnesses (from parseWitnessVkey) whose cosignature `note` carries;
 * throws VerifyError("cosignature") when a known witness's line does not verify, and
 * VerifyError("quorum") when fewer than `quorum` cosigned. */
export async function witnessQuorum(note, witnesses, quorum) {
  const all = await witnessCosignatures(note, witnesses);
  const found = all.filter((w) => w.time !== null).map((w) => w.label);
  if (found.length < quorum) {
    throw new VerifyError("quorum", {
      count: String(found.length), known: String(all.length), quorum: String(quorum),
    });
  }
  return found;
}

// -- receipts -----------------------------------------------------------------------------

/** RFC 8785 for Lunaria's subset (integers, strings, ASCII keys): sorted keys, no spaces. */
export function canonicalJson(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new VerifyError("malformed", {}, d("the entry holds a non-integer number {value}", { value }));
    }
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
}

function parseIndex(value, what) {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
    return BigInt(value);
  }
  if (typeof value === "string" && /^(0|[1-9][0-9]{0,18})$/.test(value)) return BigInt(value);
  throw new VerifyError("malformed", {}, d("{what} {value} is not a non-negative integer", { what, value: show(value) }));
}

function entryBytesFrom(value) {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return encoder.encode(value.replace(/\r?\n$/, ""));
  if (typeof value === "object") return encoder.encode(canonicalJson(value));
  throw new VerifyError("malformed", {}, d("the entry is neither text nor an object"));
}

/** The fields (dotted paths) where two JSON values differ, in order. */
function differences(shown, hashed, path = "") {
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!isObject(shown) || !isObject(hashed)) {
    return canonicalJson(shown ?? null) === canonicalJson(hashed ?? null) ? [] : [path];
  }
  const keys = [...new Set([...Object.keys(shown), ...Object.keys(hashed)])].sort();
  return keys.flatMap((k) => differences(shown[k], hashed[k], path ? `${path}.${k}` : k));
}

/**
 * The entry object of a receipt JSON was edited: it no longer matches the bytes that were
 * hashed (entry_b64). Names the first field that differs and both values.
 */
function entryChanged(shown, bytes) {
  let hashed = null;
  try {
    hashed = JSON.parse(decoder.decode(bytes));
  } catch {
    hashed = null;
  }
  const fields = differences(shown, hashed);
  const field = fields[0] || "entry";
  const valueAt = (v) => field.split(".").reduce((o, k) => (o == null ? o : o[k]), v);
  return new VerifyError("entry_changed", { field: fields.join(", ") || field },
    d("the receipt shows {field} = {shown}; the hashed bytes hold {hashed}",
      { field, shown: show(valueAt(shown) ?? null), hashed: show(valueAt(hashed) ?? null) }));
}

/** A receipt from its JSON twin (see the top of this file). */
export function parseReceiptJson(obj) {
  const fail = (detail) => new VerifyError("malformed", {}, detail);
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw fail(d("the receipt JSON is not an object"));
  }
  if (typeof obj.tlog_proof === "string" && obj.entry === undefined) {
    return parseTlogProof(obj.tlog_proof);
  }
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const nested = [obj.proof, obj.inclusion, obj.inclusion_proof].find(isObject) || {};
  // The first of `names` (top level first, then the nested proof) that passes `accept`.
  const pick = (accept, ...names) => {
    for (const source of [obj, nested]) {
      for (const name of names) {
        if (source[name] !== undefined && source[name] !== null && accept(source[name])) {
          return source[name];
        }
      }
    }
    return undefined;
  };
  const any = () => true;
  const b64 = obj.entry_b64 ?? obj.entry_base64;
  let entry = null;
  if (typeof b64 === "string") {
    entry = fromBase64(b64);
    if (entry === null) throw fail(d("entry_b64 is not canonical padded base64"));
    if (isObject(obj.entry) && canonicalJson(obj.entry) !== decoder.decode(entry)) {
      throw entryChanged(obj.entry, entry);
    }
  } else {
    entry = entryBytesFrom(obj.entry ?? obj.entry_bytes ?? obj.canonical_entry);
  }
  const seqOfEntry = isObject(obj.entry) ? obj.entry.seq : undefined;
  const indexValue = pick(any, "seq", "index", "leaf_index") ?? seqOfEntry;
  if (indexValue === undefined) throw fail(d("the receipt has no index"));
  const index = parseIndex(indexValue, "index");
  const nestedIndex = nested.index ?? nested.leaf_index;
  if (nestedIndex !== undefined && parseIndex(nestedIndex, "proof index") !== index) {
    throw fail(d("the receipt's seq {index} differs from its proof index {proof_index}", { index, proof_index: nestedIndex }));
  }
  const hashesValue = pick(Array.isArray, "hashes", "proof", "path", "inclusion_proof");
  if (hashesValue === undefined) throw fail(d("the receipt has no inclusion proof hashes"));
  let checkpoint = pick(any, "checkpoint", "signed_checkpoint", "checkpoint_note", "note");
  if (isObject(checkpoint)) checkpoint = checkpoint.note;
  if (typeof checkpoint !== "string") throw fail(d("the receipt has no signed checkpoint"));
  const sizeValue = pick(any, "size", "tree_size");
  const leafHexes = [obj.leaf_hash, obj.entry_hash, nested.leaf_hash].filter(
    (v) => v !== undefined && v !== null);
  const leafHashes = leafHexes.map((h) => fromHex(h, "leaf hash"));
  if (leafHashes.some((h) => !equalBytes(h, leafHashes[0]))) {
    throw fail(d("the receipt states two different leaf hashes"));
  }
  return {
    format: "json",
    entry,
    index,
    size: sizeValue === undefined ? null : parseIndex(sizeValue, "size"),
    leafHash: leafHashes.length ? leafHashes[0] : null,
    proof: hashesValue.map((h, i) => fromHex(h, `proof hash ${i}`)),
    checkpoint,
    vkey: typeof obj.vkey === "string" ? obj.vkey : null,
    texts: isObject(obj.texts) ? obj.texts : null,
  };
}

/** c2sp.org/tlog-proof@v1: header, optional extra, index, base64 hashes, blank, checkpoint. */
export function parseTlogProof(text) {
  const fail = (detail) => new VerifyError("malformed", {}, detail);
  // Forgive what pasting does to text: CRLF line ends, trailing blank lines or spaces.
  text = text.replace(/\r\n/g, "\n").replace(/\s+$/, "") + "\n";
  const lines = text.split("\n");
  if (lines[0] !== TLOG_PROOF_HEADER) throw fail(d("the first line is not {header}", { header: TLOG_PROOF_HEADER }));
  let at = 1;
  let extra = null;
  if (lines[at]?.startsWith("extra ")) {
    extra = fromBase64(lines[at].slice(6));
    if (extra === null) throw fail(d("the extra line is not canonical base64"));
    at++;
  }
  const indexMatch = /^index (0|[1-9][0-9]{0,18})$/.exec(lines[at] ?? "");
  if (!indexMatch) throw fail(d("line {line} is not \"index N\": {value}", { line: at + 1, value: show(lines[at] ?? "") }));
  at++;
  const proof = [];
  while (at < lines.length && lines[at] !== "") {
    const hash = fromBase64(lines[at]);
    if (hash === null || hash.length !== HASH_SIZE) {
      throw fail(d("proof line {line} is not a base64 SHA-256 hash", { line: proof.length + 1 }));
    }
    proof.push(hash);
    at++;
  }
  if (at >= lines.length) throw fail(d("no blank line before the checkpoint"));
  // The entry may travel in `extra` (unauthenticated, but it is hashed and proven below).
  let entry = null;
  if (extra !== null) {
    try {
      const decoded = decoder.decode(extra);
      if (decoded.startsWith("{")) entry = extra;
    } catch {
      entry = null;
    }
  }
  return {
    format: "tlog-proof",
    entry,
    index: BigInt(indexMatch[1]),
    size: null,
    leafHash: null,
    proof,
    checkpoint: lines.slice(at + 1).join("\n"),
    vkey: null,
    texts: null,
  };
}

/** Receipt JSON or tlog-proof text, told apart by the first character. */
export function parseReceipt(text) {
  const trimmed = text.replace(/^\uFEFF/, "").trimStart();
  if (!trimmed) throw new VerifyError("empty");
  if (trimmed.startsWith("{")) {
    let obj;
    try {
      obj = JSON.parse(trimmed);
    } catch (error) {
      throw new VerifyError("malformed", {}, d("not valid JSON: {error}", { error: error.message }));
    }
    return parseReceiptJson(obj);
  }
  if (trimmed.startsWith(TLOG_PROOF_HEADER)) return parseTlogProof(trimmed);
  throw new VerifyError("format", {}, d("it starts with {value}", { value: show(trimmed.slice(0, 24)) }));
}

// -- public text (entry data version 2) -----------------------------------------------------

/** Hex SHA-256("lunaria/public-text/v1" || 0x00 || salt || UTF-8 text). */
export async function textCommitment(salt, text) {
  const domain = encoder.encode(TEXT_DOMAIN);
  return toHex(await sha256(concat(domain, new Uint8Array([0x00]), salt, encoder.encode(text))));
}

function fieldValue(data, path) {
  let value = data;
  for (const step of path.split(".")) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
    value = value[step];
  }
  return value;
}

/**
 * Check the public texts served beside an entry (`texts`: field -> {commitment, text, salt}):
 * each names a commitment the entry holds at that field, and each text given recomputes it.
 * Resolves to [{field, commitment, redacted}], or rejects with the VerifyError that failed.
 */
export async function checkTexts(entry, texts) {
  const checked = [];
  for (const [field, served] of Object.entries(texts || {})) {
    const held = fieldValue(entry && entry.data, field);
    const commitment = held && typeof held === "object" ? held.commitment : undefined;
    if (typeof commitment !== "string" || !served || served.commitment !== commitment) {
      throw new VerifyError("text", { field },
        d("the entry holds {held} at {field}, the receipt serves {served}", { held: show(commitment ?? null), field, served: show(served ? served.commitment : null) }));
    }
    if (served.text === null || served.text === undefined) {
      checked.push({ field, commitment, redacted: true });
      continue;
    }
    const salt = fromHex(served.salt, `salt of ${field}`);
    if (salt.length !== HASH_SIZE || typeof served.text !== "string") {
      throw new VerifyError("text", { field }, d("the salt of {field} is not 32 bytes", { field }));
    }
    const computed = await textCommitment(salt, served.text);
    if (computed !== commitment) {
      throw new VerifyError("text", { field },
        d("the text and salt give {got}, the entry holds {want}", { got: computed, want: commitment }));
    }
    checked.push({ field, commitment, redacted: false });
  }
  return checked;
}

// -- the whole check ------------------------------------------------------------------------

async function fetchOk(url, what) {
  let response;
  try {
    response = await fetch(url, { cache: "no-store", credentials: "omit" });
  } catch (error) {
    throw new VerifyError("fetch", { what }, String(error));
  }
  if (!response.ok) throw new VerifyError("fetch", { what }, d("HTTP {status}", { status: response.status }));
  return response;
}

async function latestCheckpointNote() {
  const response = await fetchOk(CHECKPOINT_URL, CHECKPOINT_URL);
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    const body = await response.json();
    const note = typeof body === "string" ? body : body.note ?? body.checkpoint;
    if (typeof note !== "string") {
      throw new VerifyError("fetch", { what: CHECKPOINT_URL }, d("no signed note in the answer"));
    }
    return note;
  }
  return response.text();
}

async function consistencyProof(from, to) {
  const url = `${CONSISTENCY_URL}?from=${from}&to=${to}`;
  const body = await (await fetchOk(url, url)).json();
  if (!body || !Array.isArray(body.hashes) || String(body.from) !== String(from) ||
      String(body.to) !== String(to)) {
    throw new VerifyError("fetch", { what: url }, d("the answer is not a proof for these sizes"));
  }
  return body.hashes.map((h, i) => fromHex(h, `consistency hash ${i}`));
}

/**
 * Verify a receipt. `options`: `vkey` (the key to trust), `origin` (the expected log),
 * `witnesses` (witness vkeys, strings or from parseWitnessVkey) and `quorum` (how many of them
 * must have cosigned; default all), `entryText` (the entry, when the receipt does not carry
 * it), `onStep(key, params)` (called as each check passes: `cosigned` once per witness that
 * cosigned, `time` in POSIX seconds) and `onNotice(key, params)` (`not_cosigned`: a witness
 * given that did not cosign, which fails only when the quorum is then not met). Resolves to a summary, or rejects with the VerifyError that failed.
 */
export async function verifyReceipt(text, options) {
  const step = options.onStep || (() => {});
  const notice = options.onNotice || (() => {});
  const receipt = parseReceipt(text);
  step("parsed", { format: receipt.format === "json" ? "JSON" : TLOG_PROOF_HEADER });
  const key = await parseVkey(options.vkey);

  const entry = receipt.entry ?? entryBytesFrom(options.entryText?.trim() || null);
  if (entry === null) throw new VerifyError("no_entry");
  const leaf = await leafHash(entry);
  if (receipt.leafHash !== null && !equalBytes(leaf, receipt.leafHash)) {
    throw new VerifyError("leaf", {},
      d("the entry hashes to {got}, the receipt says {want}", { got: toHex(leaf), want: toHex(receipt.leafHash) }));
  }
  let parsed;
  try {
    parsed = JSON.parse(decoder.decode(entry));
  } catch (error) {
    throw new VerifyError("malformed", {}, d("the entry is not JSON: {error}", { error: error.message }));
  }
  if (parsed === null || typeof parsed !== "object" || !Number.isSafeInteger(parsed.seq) ||
      BigInt(parsed.seq) !== receipt.index) {
    throw new VerifyError("entry_seq", { seq: String(parsed?.seq), index: String(receipt.index) });
  }
  step("leaf", { hash: toHex(leaf) });

  const note = parseNote(receipt.checkpoint);
  const checkpoint = parseCheckpointBody(note.text);
  if (options.origin && checkpoint.origin !== options.origin) {
    throw new VerifyError("origin", { got: checkpoint.origin, want: options.origin });
  }
  if (receipt.size !== null && receipt.size !== checkpoint.size) {
    throw new VerifyError("malformed", {},
      d("the receipt's tree size {size} is not the checkpoint's {checkpoint_size}", { size: receipt.size, checkpoint_size: checkpoint.size }));
  }
  const root = await rootFromInclusionProof(receipt.index, checkpoint.size, leaf, receipt.proof);
  if (!equalBytes(root, checkpoint.root)) {
    throw new VerifyError("inclusion", {},
      d("the proof gives root {got}, the checkpoint says {want}", { got: toHex(root), want: toHex(checkpoint.root) }));
  }
  step("inclusion", { index: String(receipt.index), size: String(checkpoint.size) });

  await checkSignature(note, key);
  step("signature", { key: key.label });
  const witnesses = await Promise.all((options.witnesses || []).map(
    (w) => (typeof w === "string" ? parseWitnessVkey(w) : w)));
  if (witnesses.length || options.quorum) {
    const all = await witnessCosignatures(note, witnesses);
    const quorum = options.quorum ?? all.length;
    if (quorum > all.length) {
      throw new VerifyError("quorum_keys", { quorum: String(quorum), count: String(all.length) });
    }
    for (const w of all) {
      if (w.time !== null) step("cosigned", { key: w.label, name: w.key.name, time: w.time });
      else notice("not_cosigned", { key: w.label, name: w.key.name });
    }
    const count = all.filter((w) => w.time !== null).length;
    if (count < quorum) {
      throw new VerifyError("quorum", {
        count: String(count), known: String(all.length), quorum: String(quorum),
      });
    }
    step("witnesses", { count: String(count), known: String(all.length), quorum: String(quorum) });
  }

  const latest = await openCheckpoint(await latestCheckpointNote(), key, checkpoint.origin);
  step("latest", { size: String(latest.size), key: key.label });
  const [older, newer] = latest.size < checkpoint.size ? [latest, checkpoint] : [checkpoint, latest];
  const proof = older.size === newer.size || older.size === 0n
    ? [] : await consistencyProof(older.size, newer.size);
  await verifyConsistency(older.size, newer.size, proof, older.root, newer.root);
  step("consistency", { from: String(older.size), to: String(newer.size) });

  for (const text of await checkTexts(parsed, receipt.texts)) {
    step(text.redacted ? "text_redacted" : "text", { field: text.field });
  }

  return {
    seq: String(parsed.seq),
    kind: parsed.kind,
    ts: parsed.ts,
    data: parsed.data || {},
    entryHash: toHex(leaf),
    checkpointSize: String(checkpoint.size),
    latestSize: String(latest.size),
  };
}

// -- the page -----------------------------------------------------------------------------

function message(key, params = {}) {
  const template = document.querySelector(`#verify-messages [data-key="${key}"]`);
  return fill(template ? template.textContent : key, params);
}

/** The failure's detail in the page's language when the page has its template. */
function detailText(error) {
  if (!error.why) return error.detail;
  const found = [...document.querySelectorAll("#verify-details [data-template]")].find(
    (item) => item.dataset.template === error.why.template);
  return found ? fill(found.textContent, error.why.params) : error.detail;
}

/**
 * Minor units as the page shows money: `unit` is the currency's `{exponent, decimals}` from
 * the page's data (ledger/fund/money.py display_decimals: the decimals always shown; finer
 * ones only when not zero), so the rule is stated once, on the server.
 */
export function formatAmount(digits, currency, unit, locale) {
  if (!unit || typeof digits !== "string" || !/^-?[0-9]+$/.test(digits)) {
    return `${digits} ${currency}`;
  }
  const { exponent, decimals } = unit;
  const sign = digits.startsWith("-") ? "-" : "";
  const padded = digits.replace("-", "").padStart(exponent + 1, "0");
  const whole = padded.slice(0, padded.length - exponent);
  const fraction = padded.slice(padded.length - exponent).replace(/0+$/, "")
    .padEnd(decimals, "0");
  const numbers = new Intl.NumberFormat(locale);
  const decimal = numbers.formatToParts(1.5).find((part) => part.type === "decimal").value;
  return `${sign}${numbers.format(BigInt(whole))}${fraction ? decimal + fraction : ""}\u00a0${currency}`;
}

/** "The receipt is for entry 18: Donation, 10.00 EUR, pool …, logged on …" */
function describe(summary, form) {
  const locale = document.documentElement.lang || "en";
  const pools = JSON.parse(form.dataset.pools || "{}");
  const money = JSON.parse(form.dataset.money || "{}");
  const when = new Intl.DateTimeFormat(locale, {
    dateStyle: "medium", timeStyle: "medium", timeZone: "UTC",
  }).format(new Date(summary.ts));
  const kindKey = `kind_${summary.kind}`;
  const params = {
    seq: summary.seq,
    kind: document.querySelector(`#verify-messages [data-key="${kindKey}"]`)
      ? message(kindKey) : summary.kind,
    time: `${when} UTC`,
  };
  const data = summary.data;
  if (typeof data.pool === "string") params.pool = pools[data.pool] || data.pool;
  if (typeof data.amount === "string" && typeof data.currency === "string") {
    params.amount = formatAmount(data.amount, data.currency, money[data.currency], locale);
  }
  const key = params.amount && params.pool ? "what_amount" : params.pool ? "what_pool" : "what";
  return message(key, params);
}

/** POSIX seconds (a BigInt) as the page shows a time, in UTC. */
function formatTime(seconds, locale) {
  const date = new Date(Number(seconds) * 1000);
  if (Number.isNaN(date.getTime())) return String(seconds);
  return `${new Intl.DateTimeFormat(locale, {
    dateStyle: "medium", timeStyle: "medium", timeZone: "UTC",
  }).format(date)} UTC`;
}

/** A line of the steps list: `state` "ok" (passed), "fail" or "note" (said, not failed). */
function addStep(list, state, text, detail) {
  const item = document.createElement("li");
  item.className = `step ${state}`;
  const mark = document.createElement("span");
  mark.className = "mark";
  mark.textContent = message({ ok: "passed", fail: "failed", note: "noted" }[state]);
  item.append(mark, " ", text);
  if (detail) {
    const small = document.createElement("span");
    small.className = "detail";
    small.textContent = detail;
    item.append(" ", small);
  }
  list.append(item);
}

function start() {
  const form = document.getElementById("verify-form");
  if (!form) return;
  const receiptText = document.getElementById("receipt-text");
  const fileInput = document.getElementById("receipt-file");
  const entryText = document.getElementById("entry-text");
  const vkeyInput = document.getElementById("vkey");
  const witnessInput = document.getElementById("witnesses");
  const quorumInput = document.getElementById("quorum");
  const locale = document.documentElement.lang || "en";
  const shown = (params) => (params.time === undefined ? params
    : { ...params, time: formatTime(params.time, locale) });
  const result = document.getElementById("result");
  const verdict = document.getElementById("verdict");
  const steps = document.getElementById("steps");
  const what = document.getElementById("verified-what");
  const submit = form.querySelector("button[type=submit]");

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files && fileInput.files[0];
    if (file) receiptText.value = await file.text();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    steps.replaceChildren();
    what.hidden = true;
    verdict.className = "verdict pending";
    verdict.textContent = message("checking");
    result.hidden = false;
    try {
      const summary = await verifyReceipt(receiptText.value, {
        vkey: vkeyInput.value,
        origin: form.dataset.origin,
        entryText: entryText.value,
        witnesses: witnessInput ? await parseWitnessList(witnessInput.value) : [],
        quorum: quorumInput ? parseQuorum(quorumInput.value) : null,
        onStep: (key, params) => addStep(steps, "ok", message(`step_${key}`, shown(params))),
        onNotice: (key, params) => addStep(steps, "note", message(`step_${key}`, params)),
      });
      verdict.className = "verdict ok";
      verdict.textContent = message("verified", {
        seq: summary.seq, size: summary.latestSize,
      });
      what.textContent = describe(summary, form);
      what.hidden = false;
      const link = document.createElement("a");
      link.href = `/entries/${encodeURIComponent(summary.seq)}`;
      link.textContent = message("see_entry", { seq: summary.seq });
      const item = document.createElement("li");
      item.className = "step see";
      item.append(link);
      steps.append(item);
    } catch (error) {
      const known = error instanceof VerifyError;
      const text = known ? message(`error_${error.key}`, error.params) : String(error);
      addStep(steps, "fail", text, known ? detailText(error) : "");
      verdict.className = "verdict fail";
      verdict.textContent = `${message("not_verified")}: ${text}`;
    } finally {
      submit.disabled = false;
      verdict.focus();
    }
  });
  submit.disabled = false;
  form.classList.add("ready");
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}
