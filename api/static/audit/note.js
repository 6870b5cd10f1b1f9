// Signed notes (golang.org/x/mod/sumdb/note) and the tlog checkpoints they
// carry (C2SP tlog-checkpoint), checked in the browser: Ed25519 through
// WebCrypto, against a verifier key the auditor pinned, following the
// ledger's announced key rotations the way heed verify does.

import { sha256, equal } from "./merkle.js";

const te = new TextEncoder();

export class NoteError extends Error {}

export function b64decode(s) {
  let bin;
  try {
    bin = atob(s);
  } catch {
    throw new NoteError("not base64");
  }
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const ALG_ED25519 = 1;

function validName(name) {
  return name !== "" && !/\s/.test(name) && !name.includes("+");
}

/**
 * parseKey reads a note verifier key, "name+hash+base64(alg || key)", and
 * checks that its hash is the one its name and key give.
 */
export async function parseKey(text) {
  const vkey = text.trim();
  // The key's base64 may itself hold "+": only the first two separate.
  const i = vkey.indexOf("+");
  const j = vkey.indexOf("+", i + 1);
  const [name, hash16, key64] = [vkey.slice(0, i), vkey.slice(i + 1, j), vkey.slice(j + 1)];
  if (i < 0 || j < 0 || !validName(name) || !/^[0-9a-f]{8}$/.test(hash16)) {
    throw new NoteError("not a verifier key: expected name+hash+key (as in the ledger's verifier.key)");
  }
  const key = b64decode(key64);
  if (key.length !== 33 || key[0] !== ALG_ED25519) {
    throw new NoteError("not an Ed25519 verifier key");
  }
  const h = await sha256(te.encode(name + "\n"), key);
  if (hex(h.slice(0, 4)) !== hash16) {
    throw new NoteError("the key's hash does not match its name and key: it was altered or mistyped");
  }
  return { text: vkey, name, hash: hash16, raw: key.slice(1), id: name + "+" + hash16 };
}

/** splitNote separates a signed note into its text and signature lines. */
export function splitNote(msg) {
  for (const ch of msg) {
    const c = ch.codePointAt(0);
    if (c < 0x20 && c !== 0x0a) throw new NoteError("the note holds control characters");
  }
  const split = msg.lastIndexOf("\n\n");
  if (split < 0) throw new NoteError("the note has no signature block");
  const text = msg.slice(0, split + 1);
  const block = msg.slice(split + 2);
  if (block === "" || !block.endsWith("\n")) throw new NoteError("the note's signature block is malformed");
  const sigs = [];
  for (const line of block.slice(0, -1).split("\n")) {
    if (!line.startsWith("— ")) throw new NoteError("a signature line does not start with an em dash");
    const rest = line.slice(2);
    const sp = rest.indexOf(" ");
    if (sp <= 0) throw new NoteError("a signature line is malformed");
    const name = rest.slice(0, sp);
    const sig = b64decode(rest.slice(sp + 1));
    if (!validName(name) || sig.length < 5) throw new NoteError("a signature line is malformed");
    sigs.push({ name, hash: hex(sig.slice(0, 4)), sig: sig.slice(4) });
  }
  return { text, sigs };
}

let ed25519 = null;

async function importKey(raw) {
  if (ed25519 === false) throw new NoteError("this browser's WebCrypto cannot check Ed25519 signatures; check the ledger with heed verify instead");
  try {
    const k = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    ed25519 = true;
    return k;
  } catch (e) {
    if (e && e.name === "NotSupportedError") {
      ed25519 = false;
      return importKey(raw);
    }
    throw new NoteError("the key could not be read: " + e.message);
  }
}

/**
 * signedBy reports whether the note carries a valid signature by key. A
 * signature line naming the key whose signature does not verify throws:
 * that is a forgery, not a missing signature.
 */
export async function signedBy(note, key) {
  const k = await importKey(key.raw);
  const data = te.encode(note.text);
  for (const s of note.sigs) {
    if (s.name !== key.name || s.hash !== key.hash) continue;
    if (s.sig.length !== 64 || !(await crypto.subtle.verify({ name: "Ed25519" }, k, s.sig, data))) {
      throw new NoteError("the signature by " + key.id + " does not verify: the checkpoint was altered");
    }
    return true;
  }
  return false;
}

const ROTATION = "heed-key-rotation ";

/** parseCheckpoint reads a checkpoint's text: origin, size, root, and a key rotation. */
export function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "") throw new NoteError("the checkpoint lacks its origin, size and root lines");
  const [origin, sizeText, rootText] = lines;
  if (origin === "") throw new NoteError("the checkpoint has an empty origin");
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText)) throw new NoteError("the checkpoint's tree size is malformed");
  const root = b64decode(rootText);
  if (root.length !== 32) throw new NoteError("the checkpoint's root hash is malformed");
  let rotation = null;
  for (const ext of lines.slice(3, -1)) {
    if (!ext.startsWith(ROTATION)) continue;
    const f = ext.slice(ROTATION.length).split(" ");
    if (rotation || f.length !== 2 || f[0] === "" || f[1] === "" || f[0] === f[1]) throw new NoteError("the checkpoint's key rotation line is malformed");
    rotation = { old: f[0], next: f[1] };
  }
  return { origin, size: Number(sizeText), root, rotation };
}

/**
 * chain follows the announced rotations from the pinned key: a rotation
 * from the active key must be signed by it and by the new key, which is
 * active after it. It returns the keys with the largest tree size each
 * signs (the last one without bound).
 */
export async function chain(pinned, rotations) {
  const keys = [{ key: pinned, upTo: Infinity }];
  for (const msg of rotations) {
    const note = splitNote(msg);
    const cp = parseCheckpoint(note.text);
    const active = keys[keys.length - 1];
    if (!cp.rotation || cp.rotation.old !== active.key.text) continue;
    const next = await parseKey(cp.rotation.next);
    if (!(await signedBy(note, active.key))) {
      throw new NoteError("a key rotation at size " + cp.size + " is not signed by the key it retires, " + active.key.id);
    }
    if (!(await signedBy(note, next))) {
      throw new NoteError("a key rotation at size " + cp.size + " is not signed by the key it announces, " + next.id);
    }
    active.upTo = cp.size;
    keys.push({ key: next, upTo: Infinity, since: cp.size });
  }
  return keys;
}

/** keyAt is the key of the chain that signs the checkpoint of size. */
export function keyAt(keys, size) {
  return keys.find((k) => size <= k.upTo) || keys[keys.length - 1];
}

/**
 * openCheckpoint checks that msg is a checkpoint signed by the key the
 * chain names for its size, and returns it parsed.
 */
export async function openCheckpoint(msg, keys) {
  const note = splitNote(msg);
  const cp = parseCheckpoint(note.text);
  const k = keyAt(keys, cp.size);
  if (!(await signedBy(note, k.key))) {
    const by = note.sigs.map((s) => s.name + "+" + s.hash).join(", ") || "nobody";
    throw new NoteError("the checkpoint of size " + cp.size + " is not signed by " + k.key.id + " (signed by " + by + ")");
  }
  return { ...cp, key: k.key, note: msg };
}

export { equal };
