package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// stdLogger adapts logger to the *log.Logger that serf and memberlist
// write to. They put the level in the text ("[WARN] memberlist: ...");
// levelHandler turns it back into the record's level, so memberlist's
// chatty DEBUG lines stay out of an Info log.
func stdLogger(logger *slog.Logger) *log.Logger {
	return slog.NewLogLogger(levelHandler{logger.Handler()}, slog.LevelInfo)
}

// levelHandler re-levels records whose message starts with a "[LEVEL]"
// prefix and strips it.
type levelHandler struct {
	inner slog.Handler
}

// lineLevel splits a serf or memberlist line into its level and the rest.
// A line without a known prefix keeps level def.
func lineLevel(msg string, def slog.Level) (slog.Level, string) {
	prefixes := [...]struct {
		prefix string
		level  slog.Level
	}{
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
		{"[WARN]", slog.LevelWarn},
		{"[INFO]", slog.LevelInfo},
		{"[DEBUG]", slog.LevelDebug},
		{"[TRACE]", slog.LevelDebug - 4},
	}
	for _, p := range prefixes {
		if strings.HasPrefix(msg, p.prefix) {
			return p.level, strings.TrimSpace(msg[len(p.prefix):])
		}
	}
	return def, msg
}

// Enabled is asked before the level is known (slog.NewLogLogger asks at
// its fixed level), so it lets through anything the inner handler might
// take; Handle decides.
func (h levelHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return h.inner.Enabled(ctx, slog.LevelError)
}

func (h levelHandler) Handle(ctx context.Context, r slog.Record) error {
	level, msg := lineLevel(r.Message, r.Level)
	if !h.inner.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{h.inner.WithAttrs(attrs)}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.inner.WithGroup(name)}
}
