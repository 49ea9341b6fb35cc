package checks

import (
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startGRPC serves the standard health service on 127.0.0.1, over TLS
// with creds if not nil.
func startGRPC(t *testing.T, creds credentials.TransportCredentials) (*health.Server, *grpc.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return hs, srv, l.Addr().String()
}

func TestGRPC(t *testing.T) {
	hs, srv, addr := startGRPC(t, nil)
	h := newHarness(t, nil)
	h.add(Definition{ID: "g", GRPC: addr + "/api", Interval: time.Minute, Timeout: 5 * time.Second}, "")
	h.add(Definition{ID: "whole", GRPC: addr, Interval: time.Minute, Timeout: 5 * time.Second}, "")
	h.clock.waitPending(t, 2)

	// run fires both checks once and waits for them to be idle again.
	run := func() {
		h.clock.Advance(time.Minute)
		h.clock.waitPending(t, 2)
	}
	for _, st := range []struct {
		name       string
		set        func()
		wantStatus string
		wantOutput string
	}{
		{"unknown service", func() {}, StatusCritical,
			"gRPC check " + addr + "/api: failed: rpc error: code = NotFound desc = unknown service"},
		{"serving", func() { hs.SetServingStatus("api", healthpb.HealthCheckResponse_SERVING) }, StatusPassing,
			"gRPC check " + addr + "/api: success"},
		{"not serving", func() { hs.SetServingStatus("api", healthpb.HealthCheckResponse_NOT_SERVING) }, StatusCritical,
			"gRPC check " + addr + "/api: failed: serving status NOT_SERVING"},
		{"serving again", func() { hs.SetServingStatus("api", healthpb.HealthCheckResponse_SERVING) }, StatusPassing,
			"gRPC check " + addr + "/api: success"},
		{"server gone", srv.Stop, StatusCritical, "gRPC check " + addr + "/api: failed: rpc error: code = Unavailable"},
	} {
		st.set()
		run()
		u, _ := h.rec.lastOf("g")
		if u.status != st.wantStatus || !strings.HasPrefix(u.output, st.wantOutput) {
			t.Fatalf("%s: reported %s: %q, want %s: %q", st.name, u.status, u.output, st.wantStatus, st.wantOutput)
		}
		if st.name == "serving" {
			// The server as a whole ("" service) is serving from the start.
			if u, _ := h.rec.lastOf("whole"); u.status != StatusPassing || u.output != "gRPC check "+addr+": success" {
				t.Fatalf("whole server: %s: %q", u.status, u.output)
			}
		}
	}
}

func TestGRPCTLS(t *testing.T) {
	// Borrow httptest's self-signed certificate for 127.0.0.1.
	certSrv := httptest.NewTLSServer(nil)
	cert := certSrv.TLS.Certificates[0]
	certSrv.Close()
	_, _, addr := startGRPC(t, credentials.NewServerTLSFromCert(&cert))

	for _, tc := range []struct {
		name       string
		def        Definition
		wantStatus string
		wantOutput string
	}{
		{"TLS, skip verify", Definition{GRPC: addr, GRPCUseTLS: true, TLSSkipVerify: true}, StatusPassing, "success"},
		{"TLS, verified", Definition{GRPC: addr, GRPCUseTLS: true}, StatusCritical, "certificate"},
		{"plaintext to a TLS server", Definition{GRPC: addr}, StatusCritical, "Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			tc.def.ID, tc.def.Interval, tc.def.Timeout = "g", time.Minute, 5*time.Second
			h.add(tc.def, StatusWarning)
			h.step()
			u := h.rec.last()
			if u.status != tc.wantStatus || !strings.Contains(u.output, tc.wantOutput) {
				t.Fatalf("reported %s: %q, want %s with %q", u.status, u.output, tc.wantStatus, tc.wantOutput)
			}
		})
	}
}
