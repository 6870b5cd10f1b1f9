// Package bundle writes and checks audit bundles: everything an auditor
// needs to verify a heed ledger offline, in one NDJSON file.
//
// # Format (heed-bundle/1)
//
// One JSON value per line, each line ending in "\n":
//
//  1. A header object:
//     {"format":"heed-bundle/1","origin":O,"key":K,"events":N,"checkpoints":C}
//     where O is the checkpoint origin, K the public note verifier key
//     ("name+hash+base64") that signed the checkpoints, N the number of
//     event lines and C the number of checkpoint lines that follow. Once
//     the signing key has rotated, K is the first key and "keys" lists
//     every key in order, K first.
//  2. N event lines. Each is, byte for byte, the leaf hashed into the
//     Merkle tree ((*ledger.Event).Leaf()), in position order, and carries
//     its own "position" (1..N). The RFC 6962 record hash of a line is
//     SHA-256(0x00 ‖ line without its "\n").
//  3. C checkpoint lines {"checkpoint":T}, where T is the signed note text
//     of a C2SP tlog-checkpoint (origin, size, base64 root, blank line,
//     Ed25519 signature lines), in increasing size. The last covers all N
//     events. An export keeps at most [DefaultMaxCheckpoints] of them,
//     spread evenly, unless told otherwise: fewer checkpoints only widen
//     the range a tampered event is located to.
//
// So an auditor with any RFC 6962 implementation can recompute the root
// over the first n event lines and compare it with a checkpoint of size n.
//
// # Key rotation
//
// A checkpoint that changes the signing key carries the extension line
// "heed-key-rotation OLD NEW" after its root and is signed by both keys;
// checkpoints after it are signed by NEW alone. An export always keeps
// these checkpoints. The verifier starts from K and follows each
// announcement made by the key active at that point, so an auditor who
// trusts only the original key verifies checkpoints signed by its
// successors, while a retired key signs nothing that is accepted after
// its successor was announced.
//
// # Verification
//
// [Verify] streams the file: it checks every event line is a canonical
// leaf at the next position, hashes the lines into an in-memory tree,
// checks each checkpoint's signature (with the bundle's key, or a trusted
// key that must then match it), its origin, and that its root equals the
// tree's root at its size, and that the last checkpoint covers every event.
// Lines in the usual shape are checked for canonical form by a fast
// scanner; anything unusual goes to ledger.ParseLeaf, which decides.
//
// The first failure is returned as an [*Error] naming the first bad
// position when it can be known (an event out of sequence or malformed),
// or else the narrowest range of positions the checkpoints allow: after
// the last checkpoint that matches, up to the first that does not.
package bundle
