package checks

import (
	"time"

	"github.com/meshd/meshd/internal/backoff"
)

// Alias back-off after AliasSource errors, and how many errors in a row
// make the check critical: a blip (a leader election, say) is waited out.
const (
	aliasBackoffMin        = 200 * time.Millisecond
	aliasBackoffMax        = 10 * time.Second
	aliasErrorsBeforeAlarm = 3
	// aliasSameIndexWait spaces calls that came back with an unchanged
	// index, so a source that does not block cannot make the loop spin.
	aliasSameIndexWait = time.Second
)

// runAlias mirrors the status of another service instance: it waits for
// changes with AliasSource.AliasHealth and reports each result at once
// (the statuses it mirrors went through their own thresholds). Errors
// are retried with a bounded exponential back-off and reported as
// critical only once aliasErrorsBeforeAlarm calls in a row failed.
func (c *check) runAlias() {
	defer c.r.running.Exit()
	defer close(c.done)
	var index uint64
	errs := 0
	retry := backoff.Backoff{Min: aliasBackoffMin, Max: aliasBackoffMax}
	for {
		status, output, next, err := c.r.alias.AliasHealth(c.ctx, c.def.AliasNode, c.def.AliasService, index)
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			errs++
			c.r.logger.Warn("alias check: reading the aliased instance failed",
				"check", c.def.ID, "service", c.def.AliasService, "node", c.def.AliasNode,
				"errors_in_a_row", errs, "error", err)
			if errs >= aliasErrorsBeforeAlarm {
				c.report(StatusCritical, "alias: "+err.Error())
			}
			if !c.sleep(retry.Next()) {
				return
			}
			continue
		}
		errs = 0
		retry.Reset()
		if !validStatus(status) {
			output = "alias: aliased instance has invalid status " + status + ": " + output
			status = StatusCritical
		}
		c.report(status, cutOutput(output, c.def.OutputMaxSize))
		if next == index && !c.sleep(aliasSameIndexWait) {
			return
		}
		index = next
	}
}

// report applies a result that needs no threshold.
func (c *check) report(status, output string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.applyLocked(status, output)
}
