package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/merkle"
)

func init() {
	register("verify", "check an audit bundle offline (heed verify FILE) or a data directory (--data DIR)", verify)
}

func verify(ctx context.Context, args []string) error {
	fs := newFlags("verify")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: heed verify [--key KEY] [--since CHECKPOINT] FILE\n       heed verify [--key KEY] [--since CHECKPOINT] --data DIR")
		fs.PrintDefaults()
	}
	key := fs.String("key", "", "trusted public key: a note verifier key (name+hash+base64) or a file holding one")
	dataDir := fs.String("data", "", "verify this data directory (read-only) instead of a bundle")
	secretsDir := fs.String("secrets", "", "directory of the key files for --data (default: the data directory)")
	since := fs.String("since", "", "file holding a signed checkpoint seen before: the ledger must extend it")
	allowTail := fs.Bool("allow-unsealed-tail", false, "with --data: events after the last checkpoint (a crash before the sealer ran) are a warning, not a failure")
	file, err := parseVerifyArgs(fs, args)
	if err != nil {
		return err
	}
	if (file == "") == (*dataDir == "") {
		return fmt.Errorf("%w: give a bundle FILE or --data DIR", errUsage)
	}
	trusted := ""
	if *key != "" {
		if trusted, err = readKey(*key); err != nil {
			return err
		}
	}
	opt := bundle.Options{TrustedKey: trusted}
	if *since != "" {
		if opt.Since, err = os.ReadFile(*since); err != nil {
			return fmt.Errorf("%w: --since: %v", errUsage, err)
		}
	}
	var rep bundle.Report
	if file != "" {
		rep, err = verifyFile(ctx, file, opt)
	} else {
		rep, err = verifyData(ctx, *dataDir, *secretsDir, opt)
		if from, to, ok := unsealed(err); ok {
			tail := fmt.Sprintf("events %d..%d are not yet sealed (the server stopped before its sealer signed them, a crash say); every event up to %d verified",
				from, to, from-1)
			if !*allowTail {
				return &unsealedTail{msg: fmt.Sprintf("%s. Seal them with `heed seal --data %s` while the server is stopped, or start the server, or pass --allow-unsealed-tail", tail, *dataDir), err: err}
			}
			fmt.Fprintf(os.Stderr, "heed verify: warning: %s\n", tail)
			fmt.Printf("ok: %d events under checkpoints, %d more not yet sealed\n", from-1, to-from+1)
			return nil
		}
	}
	if err != nil {
		return err
	}
	fmt.Printf("ok: %d events under %d checkpoints of %s, signed by %s%s\n", rep.Events, rep.Checkpoints, rep.Origin, bundle.KeyID(rep.Key), rotations(rep.Keys))
	return nil
}

// unsealed reports whether err says only that events from..to are not
// covered by a checkpoint, every event before them having verified.
func unsealed(err error) (from, to int64, ok bool) {
	var be *bundle.Error
	if errors.As(err, &be) && errors.Is(be.Kind, bundle.ErrUncovered) {
		return be.From, be.To, true
	}
	return 0, 0, false
}

// unsealedTail is verify's answer for a data directory whose only fault
// is a tail of events no checkpoint covers yet: exit code 3, apart from
// damage (1).
type unsealedTail struct {
	msg string
	err error
}

func (u *unsealedTail) Error() string { return u.msg }
func (u *unsealedTail) Unwrap() error { return u.err }
func (u *unsealedTail) ExitCode() int { return 3 }

// parseVerifyArgs allows the one FILE argument before or after the flags.
func parseVerifyArgs(fs *flag.FlagSet, args []string) (string, error) {
	parse := func(a []string) error {
		if err := fs.Parse(a); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return nil
	}
	if err := parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return "", nil
	}
	file := fs.Arg(0)
	if err := parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return file, nil
}

// readKey accepts a verifier key or the name of a file that holds one.
func readKey(s string) (string, error) {
	if _, err := merkle.NewVerifier(s); err == nil {
		return s, nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return "", fmt.Errorf("%w: --key is neither a verifier key nor a readable file", errUsage)
	}
	k := strings.TrimSpace(string(b))
	if _, err := merkle.NewVerifier(k); err != nil {
		return "", fmt.Errorf("%w: %s does not hold a note verifier key", errUsage, s)
	}
	return k, nil
}

func verifyFile(ctx context.Context, path string, opt bundle.Options) (bundle.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return bundle.Report{}, err
	}
	defer f.Close()
	var bar *progress
	opt.Progress = func(done, total int64) {
		if bar == nil {
			bar = newProgress("verify", total)
		}
		bar.set(done)
	}
	rep, err := bundle.Verify(ctx, f, opt)
	if bar != nil {
		bar.finish()
	}
	return rep, err
}

// verifyData runs the bundle checks on a data directory, opened read-only,
// by streaming an export of every event (covered or not) into Verify; it
// then checks that the tree hashes the store keeps agree with its events.
func verifyData(ctx context.Context, dir, secretsDir string, opt bundle.Options) (bundle.Report, error) {
	if exists(filepath.Join(dir, treeFile)) {
		return bundle.Report{}, fmt.Errorf("%w: %s keeps its log in KurrentDB: verify the audit bundle (GET /v1/audit/bundle) instead", errUsage, dir)
	}
	d, err := openData(dir, secretsDir, "", true)
	if err != nil {
		return bundle.Report{}, err
	}
	defer d.Close()
	head, err := d.Store.Head(ctx)
	if err != nil {
		return bundle.Report{}, err
	}
	cps, err := d.checkpointsN(int64(head), -1)
	if err != nil {
		return bundle.Report{}, err
	}
	origin := d.Origin
	if len(cps) > 0 {
		origin = cps[len(cps)-1].Origin
	}
	if opt.TrustedKey == "" {
		opt.TrustedKey = d.Secrets.VerifierKey
	}
	pr, pw := io.Pipe()
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	exported := make(chan struct{})
	go func() {
		defer close(exported)
		pw.CloseWithError(bundle.Export(ectx, pw, d.Store, origin, d.Secrets.VerifierKey, cps,
			// Every checkpoint: a live check is thorough, not portable.
			bundle.ExportOptions{Size: int64(head), MaxCheckpoints: -1}))
	}()
	bar := newProgress("verify", int64(head))
	opt.Progress = func(done, _ int64) { bar.set(done) }
	rep, err := bundle.Verify(ctx, pr, opt)
	bar.finish()
	// Stop the export if Verify gave up early, and wait for it before the
	// store closes.
	cancel()
	pr.Close()
	<-exported
	if err != nil {
		return rep, err
	}
	if len(cps) > 0 {
		last := cps[len(cps)-1]
		stored, err := tlog.TreeHash(last.Size, d.Store)
		if err != nil {
			return rep, err
		}
		if stored != last.Root {
			return rep, fmt.Errorf("the store's tree hashes disagree with its events at size %d: proofs it serves would be wrong", last.Size)
		}
	}
	return rep, nil
}
