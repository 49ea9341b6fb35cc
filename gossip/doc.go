// Package gossip is the LAN gossip pool every meshd agent, server or
// client, belongs to: membership and failure detection with SWIM gossip
// (hashicorp/serf on hashicorp/memberlist), and the tags that say what
// each agent is (role, datacenter, node ID, server RPC port,
// bootstrap_expect, build).
//
// Pool is the component. New validates and allocates; Start binds the
// gossip port (TCP and UDP, 8301 by default) and starts serf; Join and
// RetryJoin contact other agents; Members, Servers and LocalMember read
// the membership; Config.EventHandler hears of joins, graceful leaves,
// failures, tag updates and reaps, in order, on one goroutine. An agent
// stops in two phases, as serf does: Leave gossips a graceful leave (the
// others record "left"), Shutdown closes the sockets and waits for the
// pool's goroutines. Shutdown without Leave looks like a crash to the
// others: they record "failed" and reconnect for Config.ReconnectTimeout
// (72 h, as Consul). With Config.SnapshotPath set, serf records the
// members it knows, and a restarted agent rejoins them by itself.
//
// Tags are encoded into serf tags with short keys ("role", "dc", "id",
// "port", "expect", "wan", "build", "vsn"); they travel in memberlist's node
// meta, which holds at most MaxTagsSize (512) bytes, and Tags.Validate
// checks the exact encoded size. The keys are meshd's, not Consul's
// ("role" is "server" or "client"), so meshd and Consul agents cannot
// share a pool.
//
// # Failure detection
//
// memberlist probes one member per ProbeInterval, round-robin. A probe
// that gets no ack within ProbeTimeout is retried through 3 other
// members and over TCP until the interval ends; then the member is
// suspect, and declared failed when its suspicion timer runs out unless
// it refutes first. With n members (memberlist's suspicionTimeout,
// newSuspicion, remainingSuspicionTime):
//
//	min = SuspicionMult * max(1, log10(max(1, n))) * ProbeInterval
//	max = SuspicionMaxTimeoutMult * min          (Lifeguard)
//	k   = SuspicionMult - 2 confirmations        (0 if n-2 < k: timer = min)
//	timer after c independent confirmations, from the start of suspicion:
//	      max(min, max - log(c+1)/log(k+1) * (max - min))
//	crash -> failed ~ wait for the first probe (~ProbeInterval, p99 4.6x)
//	                + ProbeInterval (the failed probe) + timer
//
// DefaultLANConfig probes every 500 ms with SuspicionMult 3 and
// SuspicionMaxTimeoutMult 4 (Consul: 1 s, 4, 6). Estimated crash-to-failed
// times (mean / p99) are 4.0 / 5.8 s at 100 hosts, 5.5 / 7.3 s at 1,000
// and 7.0 / 8.8 s at 10,000, where Consul's defaults give 10 / 13.6 s,
// 14 / 17.6 s and 18 / 21.6 s. README.md has the derivation, the
// bandwidth per node and the trade-off (a host that stalls for more
// than about 2 s in a small pool is declared failed and comes back when
// it resumes); TestTuningTable recomputes the figures with memberlist's
// own formulas.
package gossip
