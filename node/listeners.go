package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/meshd/meshd/dns"
	"github.com/meshd/meshd/node/config"
)

func (a *Agent) startDNS() error {
	if a.cfg.DNSPort == config.PortDisabled {
		return nil
	}
	dcfg := dns.DefaultConfig()
	dcfg.Domain = a.cfg.Domain
	dcfg.AltDomain = a.cfg.AltDomain
	dcfg.Datacenter = a.cfg.Datacenter
	dcfg.ServiceTTL = a.cfg.DNS.TTLForService("*")
	dcfg.ServiceTTLs = a.cfg.DNS.ServiceTTL
	dcfg.NodeTTL = a.cfg.DNS.NodeTTL
	dcfg.Recursors = a.cfg.DNS.Recursors
	dcfg.RecursorTimeout = a.cfg.DNS.RecursorTimeout
	dcfg.OnlyPassing = a.cfg.DNS.OnlyPassing
	dcfg.ARecordLimit = a.cfg.DNS.ARecordLimit
	dcfg.UDPAnswerLimit = a.cfg.DNS.UDPAnswerLimit
	dcfg.NoTruncateFlag = !a.cfg.DNS.EnableTruncate
	dcfg.Logger = a.root
	dcfg.Observe = a.metrics.observeDNS
	srv, err := dns.New(dcfg, dnsResolver{a})
	if err != nil {
		return err
	}
	a.front.dns = srv
	for _, ip := range a.cfg.ClientAddrs {
		pc, ln, err := listenDNS(ip.String(), a.cfg.DNSPort)
		if err != nil {
			return fmt.Errorf("dns port: %w", err)
		}
		a.front.dnsUDP = append(a.front.dnsUDP, pc)
		a.front.dnsTCP = append(a.front.dnsTCP, ln)
		a.goServe("dns udp", func() error { return srv.ServeUDP(pc) })
		a.goServe("dns tcp", func() error { return srv.ServeTCP(ln) })
	}
	return nil
}

// listenDNS binds UDP and TCP on one port. Port 0 lets UDP pick the port
// and TCP follow; the TCP port may be taken by then, so it tries again.
func listenDNS(host string, port int) (net.PacketConn, net.Listener, error) {
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, nil, err
		}
		tcpPort := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(tcpPort)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != 0 || attempt == 20 {
			return nil, nil, err
		}
	}
}

func (a *Agent) startHTTP() error {
	if a.cfg.HTTPPort == config.PortDisabled {
		return nil
	}
	// Requests run under a context that Shutdown cancels first, so open
	// blocking queries answer at once instead of holding the shutdown.
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	a.life.cancelRequests = cancelRequests
	a.front.api = a.api()
	a.front.http = &http.Server{
		Handler:           a.front.api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
	}
	for _, ip := range a.cfg.ClientAddrs {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(a.cfg.HTTPPort)))
		if err != nil {
			return fmt.Errorf("http port: %w", err)
		}
		a.front.httpLns = append(a.front.httpLns, ln)
		srv := a.front.http
		a.goServe("http", func() error { return srv.Serve(ln) })
	}
	return nil
}

// goServe runs a serve loop owned by the agent's WaitGroup.
func (a *Agent) goServe(name string, serve func() error) {
	a.life.wg.Add(1)
	go func() {
		defer a.life.wg.Done()
		err := serve()
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, dns.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.logger.Error("listener stopped", "listener", name, "error", err)
		}
	}()
}

// HTTPAddr is the address of the first HTTP listener ("" when disabled).
func (a *Agent) HTTPAddr() string { return firstAddr(a.front.httpLns) }

// DNSAddr is the address of the first DNS listener ("" when disabled);
// UDP and TCP share it.
func (a *Agent) DNSAddr() string { return firstAddr(a.front.dnsTCP) }

func firstAddr(lns []net.Listener) string {
	if len(lns) == 0 {
		return ""
	}
	return lns[0].Addr().String()
}

func addrsOf(lns []net.Listener) []string {
	var out []string
	for _, ln := range lns {
		out = append(out, ln.Addr().String())
	}
	return out
}
