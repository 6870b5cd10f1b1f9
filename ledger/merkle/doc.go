// Package merkle makes heed's global log tamper-evident: RFC 6962 Merkle
// tree hashing (golang.org/x/mod/sumdb/tlog), signed checkpoints in the
// C2SP tlog-checkpoint signed-note format (golang.org/x/mod/sumdb/note,
// Ed25519), inclusion and consistency proofs, and the [Sealer] that cuts a
// checkpoint whenever the log has grown.
//
// # Positions and indexes
//
// Ledger positions are 1-based; tlog record indexes are 0-based. The leaf
// at position p is record p-1, and a tree of size n covers positions 1..n.
// The functions here take positions, so callers never do that arithmetic.
//
// # Leaves
//
// The leaf of an event is exactly (*ledger.Event).Leaf(); its record hash
// is SHA-256(0x00 ‖ leaf) and interior nodes SHA-256(0x01 ‖ left ‖ right),
// so any RFC 6962 tool recomputes the same roots.
//
// # Checkpoints
//
// A checkpoint body is three lines: the origin (by default
// "heed.example/<ledger-id>"), the tree size in decimal, and the base64
// root hash; [Signer] signs it as a note. [Checkpoints] keeps them in a
// bbolt file of their own (checkpoints.db in the data directory), keyed by
// tree size, and serves Latest, At(size) and List.
//
// A checkpoint may carry one extension line, "heed-key-rotation OLD NEW":
// [Signer.SignRotation] signs it with both keys, and a [Chain] that trusts
// OLD accepts NEW's checkpoints after it and no longer OLD's.
// [Checkpoints.Rotations] lists these checkpoints, and Spread always
// includes them.
//
// # Hash sources
//
// Anything that is a tlog.HashReader and knows its head can be sealed: the
// embedded store (ledger/bolt) and the in-memory one (ledger/mem) write the
// stored hashes of each leaf in the same transaction as the event. A
// backend that cannot, such as KurrentDB, follows its log and feeds leaves
// to a [Log]: a bbolt file of stored hashes, appended leaf by leaf, which is
// itself a [Source]. A sealer for a remote log is therefore:
//
//	hl, _ := merkle.OpenLog(filepath.Join(dir, "tree.db"))
//	// follow $all from position hl.Size()+1, calling hl.Append(pos, leaf)
//	// for each event (or for a run of them), then
//	s := &merkle.Sealer{Source: hl, Signer: signer, Origin: origin, Checkpoints: cps}
//	go s.Run(ctx)
//
// [Tree] is the in-memory equivalent, used to verify a bundle.
package merkle
