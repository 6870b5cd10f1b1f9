package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
)

func init() {
	register("keys create", "create an API key (admin, business, auditor or regulator) while the server is stopped", keysCreate)
	register("keys list", "list the API keys: id, role, tenant, created, expires, last used, revoked", keysList)
	register("keys revoke", "revoke an API key while the server is stopped (it is refused from the next start)", keysRevoke)
}

// keysLog opens the log the key events go to: the embedded store of the
// data directory, or the KurrentDB cluster of --store. It returns the
// closer of whatever it opened.
func keysLog(ctx context.Context, data dataFlags, storeURL string) (auth.Appender, func(), error) {
	if storeURL != "" {
		if !kurrent.IsURL(storeURL) {
			return nil, nil, fmt.Errorf("%w: --store must be a kurrentdb:// or esdb:// connection string", errUsage)
		}
		ks, err := kurrent.Open(ctx, storeURL, kurrent.Options{})
		if err != nil {
			return nil, nil, err
		}
		return ks, func() { ks.Close() }, nil
	}
	d, err := data.open(false)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (is heed serve running on this data directory?)", err)
	}
	return d.Store, func() { d.Close() }, nil
}

// keysLogAndFile opens where key events are recorded (keysLog) and the
// API key file, and returns one function that closes both.
func keysLogAndFile(ctx context.Context, data dataFlags, storeURL string) (auth.Appender, *auth.Keys, func(), error) {
	log, closeLog, err := keysLog(ctx, data, storeURL)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, err := openAPIKeys(*data.dir)
	if err != nil {
		closeLog()
		return nil, nil, nil, err
	}
	return log, keys, func() { keys.Close(); closeLog() }, nil
}

// cliActor names the person at the command line as the actor of events.
func cliActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

func openAPIKeys(dir string) (*auth.Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	keys, err := auth.Open(filepath.Join(dir, apiKeysFile))
	if err != nil {
		return nil, fmt.Errorf("%w (is heed serve running on this data directory?)", err)
	}
	return keys, nil
}

// parseExpiry reads --expires: a lifetime (720h, 90d) or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := auth.ParseLifetime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: --expires wants a lifetime (720h, 90d) or an RFC 3339 time", errUsage)
	}
	return now.Add(d), nil
}

func keysCreate(ctx context.Context, args []string) error {
	fs := newFlags("keys create")
	data := addDataFlags(fs)
	role := fs.String("role", "", "admin, business, auditor, regulator or reviewer")
	backfill := fs.Bool("backfill", false, "a business key that may also record history older than the back-dating window")
	tenant := fs.String("tenant", "", "the tenant a business key is bound to")
	expires := fs.String("expires", "", "when the key stops working: a lifetime (720h, 90d) or an RFC 3339 time; never when empty")
	reason := fs.String("reason", "", "why, recorded in the KeyCreated event")
	storeURL := fs.String("store", "", "the KurrentDB cluster the server uses, if any: the KeyCreated event goes there")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *role == "" {
		return fmt.Errorf("%w: --role is required", errUsage)
	}
	exp, err := parseExpiry(*expires, time.Now())
	if err != nil {
		return err
	}
	log, keys, closeKeys, err := keysLogAndFile(ctx, data, *storeURL)
	if err != nil {
		return err
	}
	defer closeKeys()
	tok, key, err := keys.Issue(auth.Spec{Role: *role, Tenant: *tenant, Expires: exp, Backfill: *backfill})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ev, err := auth.CreatedEvent(key, cliActor(), *reason)
	if err == nil {
		_, err = auth.Record(ctx, log, ev)
	}
	if err != nil {
		return errors.Join(err, keys.Discard(key.ID))
	}
	fmt.Println(tok)
	fmt.Fprintf(os.Stderr, "created %s key %s%s%s; the token above is shown once\n", key.Role, key.ID, tenantNote(key.Tenant), expiryNote(key.Expires))
	return nil
}

func keysList(_ context.Context, args []string) error {
	fs := newFlags("keys list")
	dir := fs.String("data", "heed-data", "data directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(*dir, apiKeysFile)); err != nil {
		return fmt.Errorf("no API keys in %s: %w", *dir, err)
	}
	keys, err := openAPIKeys(*dir)
	if err != nil {
		return err
	}
	defer keys.Close()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tTENANT\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, k := range keys.List() {
		tenant := k.Tenant
		if tenant == "" {
			tenant = "-"
		}
		revoked := stamp(k.Revoked)
		if !k.Revoked.IsZero() && k.RevokedBy != "" {
			revoked += " by " + k.RevokedBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Role, tenant, stamp(k.Created), stamp(k.Expires), stamp(k.LastUsed), revoked)
	}
	return tw.Flush()
}

func keysRevoke(ctx context.Context, args []string) error {
	fs := newFlags("keys revoke")
	data := addDataFlags(fs)
	reason := fs.String("reason", "", "why, recorded in the KeyRevoked event")
	storeURL := fs.String("store", "", "the KurrentDB cluster the server uses, if any: the KeyRevoked event goes there, and every instance following it refuses the key")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: heed keys revoke [--data DIR] [--reason TEXT] KEY_ID")
		fs.PrintDefaults()
	}
	id, err := parseVerifyArgs(fs, args)
	if err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("%w: give one key id (heed keys list shows them)", errUsage)
	}
	log, keys, closeKeys, err := keysLogAndFile(ctx, data, *storeURL)
	if err != nil {
		return err
	}
	defer closeKeys()
	key, did, err := keys.Revoke(auth.Revocation{ID: id, By: cliActor(), Reason: *reason})
	switch {
	case errors.Is(err, auth.ErrUnknownKey):
		return fmt.Errorf("%w: no key %s in %s", errUsage, id, *data.dir)
	case errors.Is(err, auth.ErrLastAdmin):
		return fmt.Errorf("%w: %v (heed keys create --role admin)", errUsage, err)
	case err != nil:
		return err
	}
	ev, err := auth.RevokedEvent(key)
	var e ledger.Event
	if err == nil {
		e, err = auth.Record(ctx, log, ev)
	}
	if err != nil {
		return fmt.Errorf("key %s is revoked, but its KeyRevoked event could not be recorded (run this again to record it): %w", id, err)
	}
	if did {
		fmt.Fprintf(os.Stderr, "revoked %s key %s%s (event at position %d)\n", key.Role, key.ID, tenantNote(key.Tenant), e.Position)
	} else {
		fmt.Fprintf(os.Stderr, "key %s was already revoked at %s (event at position %d)\n", key.ID, key.Revoked.Format(time.RFC3339), e.Position)
	}
	return nil
}

func tenantNote(t string) string {
	if t == "" {
		return ""
	}
	return " for tenant " + t
}

func expiryNote(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ", expiring " + t.UTC().Format(time.RFC3339)
}
