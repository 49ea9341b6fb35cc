package checks

import (
	"context"
	"crypto/tls"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// probeGRPC asks the standard gRPC health service for the status of the
// service after the slash in the check's target (none: the server as a
// whole). SERVING is passing; any other answer or error is critical.
//
// Each probe opens its own connection and closes it, as Consul does: a
// connection kept per check would hold a socket and grpc's goroutines
// between runs, and its reconnect back-off (up to two minutes) would
// delay seeing a server that came back.
func (c *check) probeGRPC(ctx context.Context) (status, output string) {
	addr, service, _ := strings.Cut(c.def.GRPC, "/")
	creds := insecure.NewCredentials()
	if c.def.GRPCUseTLS {
		creds = credentials.NewTLS(&tls.Config{
			InsecureSkipVerify: c.def.TLSSkipVerify, //nolint:gosec // the check's owner asked for it
			MinVersion:         tls.VersionTLS12,
		})
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDisableServiceConfig(),
		grpc.WithUserAgent(httpUserAgent),
	)
	if err != nil {
		return StatusCritical, "gRPC check " + c.def.GRPC + ": failed: " + err.Error()
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return StatusCritical, timeoutNote(ctx, c.def.Timeout, "gRPC check "+c.def.GRPC+": failed: "+err.Error())
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return StatusCritical, "gRPC check " + c.def.GRPC + ": failed: serving status " + st.String()
	}
	return StatusPassing, "gRPC check " + c.def.GRPC + ": success"
}
