package consensus

import (
	"bytes"
	"context"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogFor adapts slog to the hclog.Logger that raft and raft-wal take:
// hclog formats each line, this writer turns it back into one slog record
// at the line's level.
func hclogFor(logger *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        name,
		Level:       hclog.Debug,
		Output:      &slogWriter{logger: logger},
		DisableTime: true,
	})
}

type slogWriter struct {
	logger *slog.Logger
}

var levelPrefixes = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[ERROR]"), slog.LevelError},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[TRACE]"), slog.LevelDebug - 4},
}

func (w *slogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, lp := range levelPrefixes {
		if bytes.HasPrefix(line, lp.prefix) {
			level = lp.level
			line = bytes.TrimSpace(line[len(lp.prefix):])
			break
		}
	}
	if w.logger.Enabled(context.Background(), level) {
		w.logger.Log(context.Background(), level, string(line))
	}
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
