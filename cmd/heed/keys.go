package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/heed/heed/api/auth"
)

func init() {
	register("keys create", "create an API key (admin, business or auditor) while the server is stopped", keysCreate)
}

func keysCreate(_ context.Context, args []string) error {
	fs := newFlags("keys create")
	dir := fs.String("data", "heed-data", "data directory")
	role := fs.String("role", "", "admin, business or auditor")
	tenant := fs.String("tenant", "", "the tenant a business key is bound to")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *role == "" {
		return fmt.Errorf("%w: --role is required", errUsage)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	keys, err := auth.Open(filepath.Join(*dir, apiKeysFile))
	if err != nil {
		return fmt.Errorf("%w (is heed serve running on this data directory?)", err)
	}
	defer keys.Close()
	tok, key, err := keys.Create(*role, *tenant)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fmt.Println(tok)
	fmt.Fprintf(os.Stderr, "created %s key %s%s; the token above is shown once\n", key.Role, key.ID, tenantNote(key.Tenant))
	return nil
}

func tenantNote(t string) string {
	if t == "" {
		return ""
	}
	return " for tenant " + t
}
