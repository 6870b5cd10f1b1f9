package api

import (
	"context"
	"io"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/backup"
)

// Backuper writes an encrypted backup of the data directory for a
// recipient (see package backup); Config.Backup enables
// GET /v1/admin/backup.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer, recipient string) error
}

// BackupStatus is the trailer that tells a complete backup from one cut
// short: "ok" only after the last byte was written.
const BackupStatus = "Heed-Backup-Status"

type backupIn struct {
	Recipient string `query:"recipient" required:"true" maxLength:"200" doc:"the backup recipient (heed backup keygen prints it); the server encrypts to it, so secrets never leave in the clear"`
}

func (s *Server) registerBackup() {
	if s.cfg.Backup == nil {
		return
	}
	huma.Register(s.api, huma.Operation{OperationID: "admin-backup", Method: http.MethodGet, Path: "/v1/admin/backup",
		Summary:     "A consistent, encrypted backup of the data directory while serving (heed backup --server calls it)",
		Description: "The ledger, checkpoints, key stores and secrets from consistent read transactions, encrypted for the recipient. The trailer " + BackupStatus + ": ok marks a complete backup.",
		Tags:        []string{"admin"},
		Middlewares: huma.Middlewares{s.requireKey(auth.RoleAdmin)}, Security: []map[string][]string{{"key": {}}},
		Errors: []int{401, 403, 422}},
		func(ctx context.Context, in *backupIn) (*huma.StreamResponse, error) {
			if _, err := backup.ParseRecipient(in.Recipient); err != nil {
				return nil, huma.Error422UnprocessableEntity("recipient is not a heed backup recipient")
			}
			by := who(ctx).key.ID
			return &huma.StreamResponse{Body: func(hc huma.Context) {
				hc.SetHeader("Content-Type", "application/octet-stream")
				hc.SetHeader("Content-Disposition", `attachment; filename="heed-backup"`)
				hc.SetHeader("Trailer", BackupStatus)
				s.cfg.Log.Info("backup started", "by", by)
				if err := s.cfg.Backup.Backup(hc.Context(), hc.BodyWriter(), in.Recipient); err != nil {
					s.cfg.Log.Error("backup failed", "by", by, "err", err)
					hc.SetHeader(BackupStatus, "failed")
					return
				}
				hc.SetHeader(BackupStatus, "ok")
				s.cfg.Log.Info("backup written", "by", by)
			}}, nil
		})
}
