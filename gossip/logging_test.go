package gossip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestStdLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "gossip")
	std := stdLogger(logger)

	std.Printf("[DEBUG] memberlist: Stream connection from=127.0.0.1:1234")
	std.Printf("[INFO] serf: EventMemberJoin: a 127.0.0.1")
	std.Printf("[WARN] memberlist: Refuting a suspect message (from: b)")
	std.Printf("[ERR] memberlist: Failed to send gossip")
	std.Printf("no prefix at all")

	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="serf: EventMemberJoin: a 127.0.0.1" component=gossip`,
		`level=WARN msg="memberlist: Refuting a suspect message (from: b)"`,
		`level=ERROR msg="memberlist: Failed to send gossip"`,
		`level=INFO msg="no prefix at all"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Stream connection") {
		t.Errorf("a DEBUG line got through an Info logger:\n%s", out)
	}
	if strings.Contains(out, "[INFO]") || strings.Contains(out, "[WARN]") {
		t.Errorf("level prefixes were kept:\n%s", out)
	}
}

func TestEventTypeString(t *testing.T) {
	for typ, want := range map[EventType]string{
		MemberJoin: "member-join", MemberLeave: "member-leave", MemberFailed: "member-failed",
		MemberUpdate: "member-update", MemberReap: "member-reap", 42: "event-42",
	} {
		if got := typ.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(typ), got, want)
		}
	}
}
