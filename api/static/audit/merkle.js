// RFC 6962 / RFC 9162 Merkle tree checks, computed in the browser with
// WebCrypto's SHA-256. Tree sizes and indexes are plain numbers: exact up
// to 2^53, far beyond any log, and halved with arithmetic, not 32-bit
// bit operations.

const te = new TextEncoder();

/** sha256 hashes the concatenation of its byte arrays. */
export async function sha256(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const buf = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
}

const LEAF = new Uint8Array([0]);
const NODE = new Uint8Array([1]);

/** leafHash is the hash of a leaf: SHA-256(0x00 || leaf). */
export function leafHash(leaf) {
  return sha256(LEAF, typeof leaf === "string" ? te.encode(leaf) : leaf);
}

function nodeHash(left, right) {
  return sha256(NODE, left, right);
}

export function equal(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

const odd = (x) => x % 2 === 1;
const half = (x) => Math.floor(x / 2);

function powerOfTwo(x) {
  while (x > 1 && !odd(x)) x = half(x);
  return x === 1;
}

/**
 * verifyInclusion reports whether proof shows that the leaf with hash
 * leafH sits at index (0-based) of the tree of size whose root is root
 * (RFC 9162, 2.1.3.2).
 */
export async function verifyInclusion(leafH, index, size, proof, root) {
  if (!(index >= 0 && index < size)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leafH;
  for (const p of proof) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      r = await nodeHash(p, r);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(r, root);
}

/**
 * verifyConsistency reports whether proof shows that the tree of size m
 * with root oldRoot is a prefix of the tree of size n with root newRoot
 * (RFC 9162, 2.1.4.2).
 */
export async function verifyConsistency(m, n, proof, oldRoot, newRoot) {
  if (!(m >= 1 && m <= n)) return false;
  if (m === n) return proof.length === 0 && equal(oldRoot, newRoot);
  if (proof.length === 0) return false;
  let path = proof;
  // A power of two: the old tree is a complete subtree, its root the
  // proof's implicit first hash.
  if (powerOfTwo(m)) path = [oldRoot, ...proof];
  let fn = m - 1;
  let sn = n - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(fr, oldRoot) && equal(sr, newRoot);
}
