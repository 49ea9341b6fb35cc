package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/meshd/meshd/catalog"
	"github.com/meshd/meshd/consensus"
	"github.com/meshd/meshd/node/rpc"
	"github.com/meshd/meshd/node/server"
)

// startServer binds the server port, prepares Raft (Start runs it once
// gossip is up) and serves the RPC endpoints; bg ends the endpoints'
// blocking calls at shutdown.
func (a *Agent) startServer(ctx, bg context.Context) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(a.cfg.BindAddr.String(), strconv.Itoa(max(a.cfg.ServerPort, 0))))
	if err != nil {
		return fmt.Errorf("server port: %w", err)
	}
	a.server = &serverParts{ln: ln, store: catalog.NewStore(), floodCh: make(chan struct{}, 1)}
	port := ln.Addr().(*net.TCPAddr).Port
	rcfg := consensus.DefaultConfig()
	rcfg.NodeID = a.self.nodeID
	rcfg.DataDir = a.cfg.DataDir
	rcfg.Bootstrap = a.cfg.Bootstrap || a.cfg.BootstrapExpect == 1
	rcfg.Advertise = &net.TCPAddr{IP: a.self.advertise.AsSlice(), Port: port}
	rcfg.Logger = a.root
	rcfg.LeaderFunc = func(ctx context.Context) { a.server.duties.Run(ctx) }
	rcfg.ObserveApply, rcfg.ObserveFSM = a.metrics.observeRaftApply, a.metrics.observeFSM
	rcfg.ObserveLogWrite = a.metrics.observeLogWrite
	rcfg.ObserveDuplicate = a.metrics.observeDuplicate
	rcfg.OnHalt = a.metrics.observeHalt
	rcfg.ServersReadStamps = func() bool { return a.server.duties.ServersRead(consensus.StampedVersion) }
	rcfg.Raft = consensus.LANRaftConfig(a.cfg.RaftMultiplier)
	if a.cfg.DevMode {
		rcfg.Raft = consensus.DevRaftConfig()
	}
	if a.opts.consensus != nil {
		a.opts.consensus(&rcfg)
	}
	if a.server.raft, err = consensus.New(rcfg, a.server.store); err != nil {
		return err
	}
	if a.server.wan, err = a.newWAN(port); err != nil {
		return err
	}
	a.server.rpc = rpc.NewServer(rpc.ServerConfig{Codes: server.Codes, Stopped: server.ErrShutdown})
	a.servers = a.server.rpc
	autopilotFile := server.FileAutopilotConfig(a.cfg.Autopilot)
	a.server.duties = server.NewDuties(server.DutiesConfig{NodeID: a.self.nodeID, NodeName: a.cfg.NodeName, Datacenter: a.cfg.Datacenter,
		Raft: a.server.raft, Store: a.server.store, Servers: a.server.rpc, Pool: a.pool,
		Members: a.gossipMembers, Events: a.members.events, EventsDropped: &a.members.dropped,
		AutopilotFile: autopilotFile, ServerFailGrace: a.opts.serverFailGrace, Logger: a.logger})
	scfg := server.Config{Raft: a.server.raft, Store: a.server.store, Pool: a.pool, Datacenter: a.cfg.Datacenter,
		Logger: a.root.With("component", "forward"), Node: a.cfg.NodeName, Health: a.server.duties.Health,
		AutopilotFile: autopilotFile, ServersRead: a.server.duties.ServersRead}
	if a.server.wan != nil {
		scfg.WAN = a.server.wan.Router()
	}
	a.server.srv = server.New(scfg)
	a.server.srv.Bind(a.server.rpc)
	a.server.limits = server.NewLimits(a.cfg.Limits, a.metrics.reg)
	a.life.wg.Add(1)
	go func() {
		defer a.life.wg.Done()
		a.serveServerPort(ln, bg)
	}()
	return nil
}

// serveServerPort accepts connections on the server port and routes each
// by its first byte: Raft or RPC. When the listener closes, connections
// still waiting for their first byte and RPC connections are closed too,
// so neither an idle probe nor a watcher holds up a shutdown.
func (a *Agent) serveServerPort(ln net.Listener, stopping context.Context) {
	var (
		conns   sync.WaitGroup
		mu      sync.Mutex
		waiting = map[net.Conn]struct{}{} // accepted, first byte not read yet
		serving = map[net.Conn]struct{}{} // RPC connections
		closing bool
	)
	defer func() {
		mu.Lock()
		closing = true
		for c := range waiting {
			c.Close()
		}
		for c := range serving {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		waiting[c] = struct{}{}
		mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 1)
			_, err := io.ReadFull(c, b)
			mu.Lock()
			delete(waiting, c)
			mu.Unlock()
			if err != nil {
				c.Close()
				return
			}
			c.SetReadDeadline(time.Time{})
			switch b[0] {
			case consensus.RaftConnByte:
				a.server.raft.HandleConn(c)
			case rpc.ConnByte:
				mu.Lock()
				if closing {
					mu.Unlock()
					c.Close()
					return
				}
				serving[c] = struct{}{}
				mu.Unlock()
				if err := a.server.rpc.ServeConn(stopping, c, a.server.limits.AdmitFor(c.RemoteAddr())); err != nil {
					a.logger.Debug("rpc connection ended", "remote", c.RemoteAddr(), "error", err)
				}
				mu.Lock()
				delete(serving, c)
				mu.Unlock()
			default:
				a.logger.Warn("unknown protocol on the server port", "byte", b[0], "remote", c.RemoteAddr())
				c.Close()
			}
		}()
	}
}
