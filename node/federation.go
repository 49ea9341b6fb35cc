package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/meshd/meshd/gossip"
	"github.com/meshd/meshd/wan"
)

// floodInterval is how often a server checks, besides on every LAN change,
// that the servers of its datacenter are all in the WAN pool.
const floodInterval = 30 * time.Second

// WithWANGossipConfig edits the WAN gossip settings before the pool
// starts, e.g. to wan.TestTimings in in-process clusters.
func WithWANGossipConfig(f func(*gossip.Config)) Option {
	return func(o *options) { o.wanGossip = f }
}

// newWAN prepares a server's WAN pool (nil when ports.serf_wan is -1); it
// binds nothing until startWAN.
func (a *Agent) newWAN(serverPort int) (*wan.Pool, error) {
	if !a.cfg.ServerMode || a.cfg.SerfWANPort < 0 {
		return nil, nil
	}
	wcfg := wan.DefaultConfig()
	wcfg.NodeName, wcfg.Datacenter, wcfg.NodeID = a.cfg.NodeName, a.cfg.Datacenter, a.self.nodeID
	wcfg.ServerPort, wcfg.Build = serverPort, Version
	wcfg.BindAddr, wcfg.BindPort = a.cfg.BindAddr.String(), a.cfg.SerfWANPort
	wcfg.AdvertiseAddr = a.self.advertise.String()
	if a.cfg.AdvertiseAddrWAN.IsValid() {
		wcfg.AdvertiseAddr = a.cfg.AdvertiseAddrWAN.String()
	}
	wcfg.ReconnectTimeout = a.cfg.ReconnectTimeout
	if !a.cfg.InMemory {
		dir := filepath.Join(a.cfg.DataDir, "serf")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("wan gossip snapshot dir: %w", err)
		}
		wcfg.SnapshotPath = filepath.Join(dir, "remote.snapshot")
	}
	wcfg.EventHandler = a.onWANEvent
	wcfg.Tune = a.opts.wanGossip
	wcfg.Logger = a.root
	return wan.New(wcfg)
}

// startWAN binds the WAN gossip port and joins start_join_wan; it returns
// the port to advertise on the LAN (so this datacenter's other servers
// bring the pool to one another), 0 without a WAN pool.
func (a *Agent) startWAN(ctx, bg context.Context) (int, error) {
	if a.server == nil || a.server.wan == nil {
		return 0, nil
	}
	if err := a.server.wan.Start(ctx); err != nil {
		return 0, err
	}
	if len(a.cfg.StartJoinWAN) > 0 {
		if _, err := a.server.wan.Join(a.cfg.StartJoinWAN); err != nil {
			return 0, fmt.Errorf("join wan %v: %w", a.cfg.StartJoinWAN, err)
		}
	}
	if len(a.cfg.RetryJoinWAN) > 0 {
		a.life.wg.Add(1)
		go func() {
			defer a.life.wg.Done()
			err := a.server.wan.RetryJoin(bg, a.cfg.RetryJoinWAN, 0, a.logger.With("pool", "wan"))
			if err != nil && bg.Err() == nil {
				a.logger.Warn("retry join wan gave up", "error", err)
			}
		}()
	}
	_, port := a.server.wan.Addr()
	return port, nil
}

func (a *Agent) onWANEvent(e gossip.Event) {
	for _, m := range e.Members {
		a.logger.Debug("wan member event", "event", e.Type.String(), "member", m.Name, "status", m.Status)
	}
	a.dropFailedServers(e)
	if e.Type == gossip.MemberJoin || e.Type == gossip.MemberUpdate {
		for _, m := range e.Members {
			if s, ok := gossip.ServerFromMember(m); ok {
				a.server.wan.Router().Forget(s.Addr.String())
			}
		}
	}
}

// startFlood starts the flood join loop once the LAN pool runs.
func (a *Agent) startFlood(bg context.Context) {
	if a.server == nil || a.server.wan == nil {
		return
	}
	a.life.wg.Add(1)
	go func() {
		defer a.life.wg.Done()
		a.floodLoop(bg)
	}()
}

// floodLoop keeps every server of this datacenter in the WAN pool, as
// Consul does: a server that sees a LAN server missing from its WAN
// members joins it (at its LAN address and advertised WAN port), so
// joining one server of each datacenter federates them all.
func (a *Agent) floodLoop(ctx context.Context) {
	t := time.NewTicker(floodInterval)
	defer t.Stop()
	for {
		a.floodJoin()
		select {
		case <-ctx.Done():
			return
		case <-a.server.floodCh:
		case <-t.C:
		}
	}
}

func (a *Agent) floodJoin() {
	known := map[string]bool{}
	for _, m := range a.server.wan.Members() {
		known[m.Name] = true
	}
	var addrs []string
	for _, m := range a.gossip.Servers(a.cfg.Datacenter) {
		if m.Tags.WANPort == 0 || known[wan.MemberName(m.Name, a.cfg.Datacenter)] {
			continue
		}
		addrs = append(addrs, net.JoinHostPort(m.Addr.String(), strconv.Itoa(m.Tags.WANPort)))
	}
	if len(addrs) == 0 {
		return
	}
	n, err := a.server.wan.Join(addrs)
	if err != nil {
		a.logger.Warn("wan flood join", "servers", addrs, "joined", n, "error", err)
		return
	}
	a.logger.Info("brought servers of this datacenter into the wan pool", "servers", addrs)
}

// floodNow asks the flood loop to look again (a LAN server joined or
// changed its tags).
func (a *Agent) floodNow() {
	select {
	case a.server.floodCh <- struct{}{}:
	default:
	}
}

// WANAddr is the address of the WAN gossip listener ("" without one).
func (a *Agent) WANAddr() string {
	if a.server == nil || a.server.wan == nil {
		return ""
	}
	host, port := a.server.wan.Addr()
	return net.JoinHostPort(host, strconv.Itoa(port))
}
