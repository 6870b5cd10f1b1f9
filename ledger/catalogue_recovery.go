package ledger

import (
	"errors"
	"time"
)

// TypeNotifierCheckpoint is the notifier's record of how far it has read
// the log for its start-up recovery, so that a restart reads only what
// came after it instead of the whole log.
const TypeNotifierCheckpoint = "NotifierCheckpoint"

// NotifierStream holds the notifier's checkpoints, tenant-less; the last
// one is the one a restart starts from.
const NotifierStream = "notifier"

// MaxCheckpointOpen bounds the reminders a checkpoint carries. A notifier
// with more unsettled than this (an SMSC that stopped sending receipts,
// say) writes no checkpoint and recovers from an older one.
const MaxCheckpointOpen = 100_000

// NotifierCheckpoint says that every reminder with events at or before
// position Through is settled, unless it is listed in Open with what the
// log up to Through says of it.
type NotifierCheckpoint struct {
	Through uint64         `json:"through"`
	Open    []OpenReminder `json:"open,omitempty"`
}

// OpenReminder is a reminder not settled as of a checkpoint: dispatched
// without a submit outcome yet, or submitted and awaiting its receipt.
type OpenReminder struct {
	Tenant     string `json:"tenant"`
	Subject    string `json:"subject"`
	ReminderID string `json:"reminder_id"`
	// First is the position of the first of its events the notifier read.
	First      uint64 `json:"first"`
	Dispatched bool   `json:"dispatched,omitempty"`
	Outcome    bool   `json:"outcome,omitempty"`
	// MessageIDs and SubmittedAt are its submit's, when it was submitted.
	MessageIDs  []string   `json:"message_ids,omitempty"`
	SubmittedAt *time.Time `json:"submitted_at,omitempty"`
}

func init() {
	register(TypeNotifierCheckpoint, map[int]func() any{1: func() any { return new(NotifierCheckpoint) }})
}

func (p *NotifierCheckpoint) check() error {
	if p.Through == 0 {
		return errors.New("through must be a log position")
	}
	if len(p.Open) > MaxCheckpointOpen {
		return errors.New("a checkpoint carries at most MaxCheckpointOpen reminders")
	}
	for _, o := range p.Open {
		if o.Tenant == "" || o.Subject == "" || o.ReminderID == "" {
			return errors.New("an open reminder needs its tenant, subject and reminder_id")
		}
		if o.First == 0 || o.First > p.Through {
			return errors.New("an open reminder's first position lies within the checkpoint")
		}
	}
	return nil
}
