package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/heed/heed/api"
	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/backup"
	"github.com/heed/heed/ledger/atomicfile"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/ledger/secrets"
)

func init() {
	register("backup", "an encrypted, consistent backup of a data directory, while serving (--server) or stopped", backupCmd)
	register("backup keygen", "make a backup identity file and print its recipient", backupKeygen)
	register("restore", "restore a backup into a new data directory and verify it", restoreCmd)
}

// snapshot writes a consistent copy of one file.
type snapshot func(w io.Writer) (int64, error)

// part is one file of a backup, in the order written.
type part struct {
	name string
	snap snapshot
}

// backupParts lists what a backup holds, in an order that keeps the
// copies consistent with each other though each comes from its own read
// transaction: the checkpoints and the anchor before the ledger, so the
// ledger copy holds every event they sign (the log only grows); the
// subject keys after it, so every sealed field it holds has its key.
// Key files come last, read from the secrets directory; keys given in the
// environment are not in the backup.
func backupParts(secretsDir string, anchor merkle.Checkpoint, checkpoints, ledger, keys, apiKeys snapshot) []part {
	ps := []part{{checkpointsFile, checkpoints}}
	if anchor.Size > 0 {
		ps = append(ps, part{anchorFile, func(w io.Writer) (int64, error) {
			n, err := w.Write(anchor.Note)
			return int64(n), err
		}})
	}
	ps = append(ps, part{storeFile, ledger}, part{keysFile, keys}, part{apiKeysFile, apiKeys})
	for _, f := range []string{secrets.LedgerIDFile, secrets.SigningFile, secrets.VerifierFile, secrets.PseudonymFile, secrets.KEKFile} {
		path := filepath.Join(secretsDir, f)
		if !exists(path) {
			continue
		}
		ps = append(ps, part{f, func(w io.Writer) (int64, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return 0, err
			}
			n, err := w.Write(b)
			return int64(n), err
		}})
	}
	return ps
}

// writeBackup encrypts the parts for recipient onto w.
func writeBackup(ctx context.Context, w io.Writer, recipient string, parts []part) error {
	enc, err := backup.Encrypt(w, recipient)
	if err != nil {
		return err
	}
	a := backup.NewArchiveWriter(enc)
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := a.File(p.name, func(w io.Writer) error { _, err := p.snap(w); return err })
		if err != nil {
			return fmt.Errorf("backup of %s: %w", p.name, err)
		}
	}
	if err := a.Close(); err != nil {
		return err
	}
	// Only a complete backup gets its last chunk: a cut one fails to
	// decrypt.
	return enc.Close()
}

// liveBackup is the running server's api.Backuper: each bolt file from a
// read transaction of the handle the server holds.
type liveBackup struct {
	d       *dataDir
	apiKeys *auth.Keys
}

func (b liveBackup) Backup(ctx context.Context, w io.Writer, recipient string) error {
	anchor, err := b.d.Checkpoints.Latest()
	if err != nil && !errors.Is(err, merkle.ErrNotFound) {
		return err
	}
	keys := snapshot(b.d.Keys.Backup)
	if _, err := b.d.Keys.Backup(io.Discard); errors.Is(err, pii.ErrNoBackup) {
		// KurrentDB keeps the subject keys; the local file is idle.
		keys = fileSnapshot(filepath.Join(b.d.Dir, keysFile))
	}
	return writeBackup(ctx, w, recipient, backupParts(b.d.SecretsDir, anchor,
		b.d.Checkpoints.Backup, b.d.Store.Backup, keys, b.apiKeys.Backup))
}

// fileSnapshot copies a bolt file no process holds open for writing, from
// a read-only transaction; a running server's lock makes it fail fast.
func fileSnapshot(path string) snapshot {
	return func(w io.Writer) (int64, error) {
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
		if errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w (is heed serve running? then give --server)", path, err)
		}
		defer db.Close()
		var n int64
		err = db.View(func(tx *bbolt.Tx) error {
			var err error
			n, err = tx.WriteTo(w)
			return err
		})
		return n, err
	}
}

// offlineBackup backs up a data directory no server is running on.
func offlineBackup(ctx context.Context, w io.Writer, dir, secretsDir, recipient string) error {
	d, err := openData(dir, secretsDir, "", true)
	if err != nil {
		return fmt.Errorf("%w (is heed serve running? then give --server)", err)
	}
	defer d.Close()
	anchor, err := d.promise()
	if err != nil {
		return err
	}
	return writeBackup(ctx, w, recipient, backupParts(d.SecretsDir, anchor,
		d.Checkpoints.Backup, d.Store.Backup, fileSnapshot(filepath.Join(dir, keysFile)), fileSnapshot(filepath.Join(dir, apiKeysFile))))
}

// backupKey is how the backup is encrypted: for a recipient, or with a
// passphrase.
type backupKey struct {
	recipient  string
	passphrase backup.Passphrase
}

func readBackupKey(recipient, passFile string) (backupKey, error) {
	var k backupKey
	switch {
	case recipient != "" && passFile != "":
		return k, fmt.Errorf("%w: give --recipient or --passphrase-file, not both", errUsage)
	case recipient != "":
		r, err := os.ReadFile(recipient)
		if err == nil {
			recipient = strings.TrimSpace(string(r))
		}
		if _, err := backup.ParseRecipient(recipient); err != nil {
			return k, fmt.Errorf("%w: --recipient: %v", errUsage, err)
		}
		k.recipient = recipient
	case passFile != "":
		p, err := os.ReadFile(passFile)
		if err != nil {
			return k, fmt.Errorf("%w: --passphrase-file: %v", errUsage, err)
		}
		k.passphrase = backup.Passphrase(strings.TrimRight(string(p), "\r\n"))
	case os.Getenv("HEED_BACKUP_PASSPHRASE") != "":
		k.passphrase = backup.Passphrase(os.Getenv("HEED_BACKUP_PASSPHRASE"))
	default:
		return k, fmt.Errorf("%w: give --recipient (from heed backup keygen) or --passphrase-file (or HEED_BACKUP_PASSPHRASE)", errUsage)
	}
	if k.passphrase != nil && len(k.passphrase) < 12 {
		return k, fmt.Errorf("%w: the passphrase is shorter than 12 characters", errUsage)
	}
	return k, nil
}

func backupCmd(ctx context.Context, args []string) error {
	fs := newFlags("backup")
	dir := fs.String("data", "heed-data", "data directory")
	secretsDir := fs.String("secrets", "", "directory of the key files (default: the data directory)")
	out := fs.String("out", "", "backup file to write")
	recipient := fs.String("recipient", "", "encrypt for this recipient (or a file holding it; heed backup keygen makes one)")
	passFile := fs.String("passphrase-file", "", "encrypt with the passphrase in this file (or HEED_BACKUP_PASSPHRASE)")
	server := fs.String("server", "", "URL of the heed serve running on the data directory (e.g. http://127.0.0.1:8080): back up through it; needs an admin key in HEED_ADMIN_KEY or --admin-key-file")
	keyFile := fs.String("admin-key-file", "", "file holding an admin API key, for --server")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	key, err := readBackupKey(*recipient, *passFile)
	if err != nil {
		return err
	}
	// With a passphrase the server encrypts for a one-off identity, and
	// the header is rewrapped here: the passphrase never leaves this
	// process, and the secrets never cross the network in the clear.
	var once *backup.Identity
	rcpt := key.recipient
	if key.passphrase != nil {
		if once, err = backup.NewIdentity(); err != nil {
			return err
		}
		rcpt = once.Recipient()
	}
	err = atomicfile.Write(*out, 0o600, func(f io.Writer) error {
		var src io.Reader
		if *server != "" {
			body, done, err := fetchBackup(ctx, *server, *keyFile, rcpt)
			if err != nil {
				return err
			}
			defer body.Close()
			src = io.MultiReader(body, readerFunc(func([]byte) (int, error) {
				if err := done(); err != nil {
					return 0, err
				}
				return 0, io.EOF
			}))
		} else {
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(offlineBackup(ctx, pw, *dir, *secretsDir, rcpt)) }()
			defer pr.Close()
			src = pr
		}
		if once == nil {
			_, err := io.Copy(f, src)
			return err
		}
		return backup.Rewrap(f, src, once, key.passphrase)
	})
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(*out))
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// fetchBackup asks the server for a backup; done reports, once the body
// is read to its end, whether the server finished it.
func fetchBackup(ctx context.Context, server, keyFile, recipient string) (io.ReadCloser, func() error, error) {
	tok := os.Getenv("HEED_ADMIN_KEY")
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: --admin-key-file: %v", errUsage, err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return nil, nil, fmt.Errorf("%w: --server needs an admin key in HEED_ADMIN_KEY or --admin-key-file", errUsage)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(server, "/")+"/v1/admin/backup?recipient="+url.QueryEscape(recipient), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --server: %v", errUsage, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, nil, fmt.Errorf("server answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	done := func() error {
		if s := resp.Trailer.Get(api.BackupStatus); s != "ok" {
			return fmt.Errorf("the server did not finish the backup (status %q): see its log", s)
		}
		return nil
	}
	return resp.Body, done, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func backupKeygen(_ context.Context, args []string) error {
	fs := newFlags("backup keygen")
	out := fs.String("out", "", "identity file to create (keep it offline: it opens every backup made for its recipient)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	id, err := backup.NewIdentity()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "# recipient: %s\n%s\n", id.Recipient(), id); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Println(id.Recipient())
	return nil
}

// restorable are the files a backup may hold; anything else is refused.
var restorable = map[string]bool{
	checkpointsFile: true, anchorFile: true, storeFile: true, keysFile: true, apiKeysFile: true,
	secrets.LedgerIDFile: true, secrets.SigningFile: true, secrets.VerifierFile: true, secrets.PseudonymFile: true, secrets.KEKFile: true,
}

func restoreCmd(ctx context.Context, args []string) error {
	fs := newFlags("restore")
	in := fs.String("in", "", "backup file to restore")
	dir := fs.String("data", "", "new data directory to restore into (must not exist, or be empty)")
	identity := fs.String("identity", "", "identity file (heed backup keygen) for a backup made for its recipient")
	passFile := fs.String("passphrase-file", "", "file holding the passphrase (or HEED_BACKUP_PASSPHRASE)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || *dir == "" {
		return fmt.Errorf("%w: --in and --data are required", errUsage)
	}
	var key backup.Key
	if *identity != "" {
		b, err := os.ReadFile(*identity)
		if err != nil {
			return fmt.Errorf("%w: --identity: %v", errUsage, err)
		}
		var text string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				text = l
			}
		}
		id, err := backup.ParseIdentity(text)
		if err != nil {
			return fmt.Errorf("%w: --identity: %v", errUsage, err)
		}
		key = id
	} else {
		k, err := readBackupKey("", *passFile)
		if err != nil {
			return err
		}
		key = k.passphrase
	}
	if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%w: %s is not empty: restore into a new directory, never over a damaged one (keep that as it is)", errUsage, *dir)
	}
	n, err := restoreInto(*in, *dir, key)
	if err != nil {
		return err
	}
	fmt.Printf("restored %d files into %s\n", n, *dir)
	for _, f := range []string{secrets.SigningFile, secrets.PseudonymFile, secrets.KEKFile} {
		if !exists(filepath.Join(*dir, f)) {
			fmt.Fprintf(os.Stderr, "heed restore: %s was not in the backup (it was given in the environment or kept with --secrets elsewhere): give it to heed the same way\n", f)
		}
	}
	rep, err := verifyData(ctx, *dir, "", bundle.Options{})
	if from, to, ok := unsealed(err); ok {
		fmt.Fprintf(os.Stderr, "heed restore: warning: events %d..%d were not yet sealed when the backup was taken; every event before them verifies; heed serve (or heed seal --data %s) seals them\n", from, to, *dir)
		return nil
	}
	if err != nil {
		return fmt.Errorf("the restored directory does not verify: %w", err)
	}
	fmt.Printf("ok: %d events under %d checkpoints verify\n", rep.Events, rep.Checkpoints)
	return nil
}

// restoreInto writes the files of the backup at in into dir, each written
// and fsynced before it is renamed into place, the directory last.
func restoreInto(in, dir string, key backup.Key) (int, error) {
	f, err := os.Open(in)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	plain, err := backup.Decrypt(f, key)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	ar := backup.NewArchiveReader(plain)
	n := 0
	for {
		name, content, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		if !restorable[name] {
			return n, fmt.Errorf("%w: unexpected file %q in the backup", backup.ErrFormat, name)
		}
		// Restored files have mode 0600, as serve creates them.
		if err := atomicfile.Write(filepath.Join(dir, name), 0o600, func(f io.Writer) error {
			_, err := io.Copy(f, content)
			return err
		}); err != nil {
			return n, fmt.Errorf("restoring %s: %w", name, err)
		}
		n++
	}
	return n, syncDir(dir)
}
