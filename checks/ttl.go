package checks

// Status values, as Consul spells them.
const (
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical"
)

// TTLExpiredOutput is the output of a TTL check whose heartbeat is late.
const TTLExpiredOutput = "TTL expired"

// validStatus reports whether s is one of the three status values.
func validStatus(s string) bool {
	return s == StatusPassing || s == StatusWarning || s == StatusCritical
}

// Notifier receives a check's new status and output.
//
// A Runner calls it from the goroutine that caused the change (a check's
// own goroutine, a timer's, or the caller of Heartbeat), one call at a
// time per check, in the order of the changes, with that check's lock
// held, so that Remove can promise silence once it returns. Hence an
// implementation must not call Add, Remove or Heartbeat for the same check,
// nor Shutdown, and callers must not call those while holding a lock that
// UpdateCheck takes.
type Notifier interface {
	UpdateCheck(checkID, status, output string)
}
