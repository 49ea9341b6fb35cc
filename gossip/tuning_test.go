package gossip

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// The functions below are memberlist v0.7.0's own formulas, copied so
// the figures in README.md are computed the way memberlist computes them:
// suspicionTimeout, retransmitLimit and pushPullScale from util.go,
// remainingSuspicionTime from suspicion.go.

func mlSuspicionTimeout(suspicionMult, n int, interval time.Duration) time.Duration {
	nodeScale := math.Max(1.0, math.Log10(math.Max(1.0, float64(n))))
	return time.Duration(suspicionMult) * time.Duration(nodeScale*1000) * interval / 1000
}

func mlRemainingSuspicionTime(n, k int32, elapsed time.Duration, min, max time.Duration) time.Duration {
	frac := math.Log(float64(n)+1.0) / math.Log(float64(k)+1.0)
	raw := max.Seconds() - frac*(max.Seconds()-min.Seconds())
	timeout := time.Duration(math.Floor(1000.0*raw)) * time.Millisecond
	if timeout < min {
		timeout = min
	}
	return timeout - elapsed
}

func mlRetransmitLimit(retransmitMult, n int) int {
	return retransmitMult * int(math.Ceil(math.Log10(float64(n+1))))
}

func mlPushPullScale(interval time.Duration, n int) time.Duration {
	const threshold = 32
	if n <= threshold {
		return interval
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(threshold))+1.0) * interval
}

// detection is the failure-detection estimate for one preset and size.
type detection struct {
	min, max   time.Duration // suspicion timeout bounds (memberlist)
	k          int           // confirmations that bring max down to min
	spread     time.Duration // gossip dissemination to everyone, estimated
	mean, p99  time.Duration // crash to the first "failed" declaration
	everyone   time.Duration // mean, until every member has heard
	noConfirm  time.Duration // mean, when no independent confirmation comes
	retransmit int
	pushPull   time.Duration
}

// estimateDetection models a crash in an n-member pool with memberlist's
// mechanics:
//
//   - the first probe of the dead member comes after W: probes of one
//     member arrive at about one per ProbeInterval (n-1 probers, each
//     probing a random one of n-1 members per interval), so W is roughly
//     exponential with mean T and 99th percentile ln(100)·T ≈ 4.6·T;
//   - a failed probe takes the whole ProbeInterval (direct ping, then
//     indirect and TCP pings until the interval's deadline), then the
//     prober marks the member suspect and starts its timer at max (min if
//     k = 0);
//   - the c-th independent confirmation reaches the first suspecter at
//     about c·T + D (the c-th other prober's probe ends c·T later on
//     average, and its suspect message gossips back in D);
//   - after c confirmations the deadline, measured from the start, is
//     remainingSuspicionTime(c, k, 0, min, max); the timer fires at
//     min over c of max(arrival of c, deadline after c);
//   - the dead message then reaches everyone in D.
//
// D, the epidemic spread with fan-out f every GossipInterval, is taken as
// (log_{f+1}(n) + ln(n)/f) rounds: the infected set grows (f+1)-fold per
// round, then the last members are reached in about ln(n)/f more rounds.
func estimateDetection(c Config, n int) detection {
	T := c.ProbeInterval
	d := detection{
		min:        mlSuspicionTimeout(c.SuspicionMult, n, T),
		k:          c.SuspicionMult - 2,
		retransmit: mlRetransmitLimit(c.RetransmitMult, n),
		pushPull:   mlPushPullScale(c.PushPullInterval, n),
	}
	d.max = time.Duration(c.SuspicionMaxTimeoutMult) * d.min
	if n-2 < d.k {
		d.k = 0
	}
	f := float64(c.GossipNodes)
	rounds := math.Log(float64(n))/math.Log(f+1) + math.Log(float64(n))/f
	d.spread = time.Duration(rounds * float64(c.GossipInterval))

	fire := d.max
	if d.k < 1 {
		fire = d.min
	} else {
		for conf := 1; conf <= d.k; conf++ {
			arrival := time.Duration(conf)*T + d.spread
			deadline := mlRemainingSuspicionTime(int32(conf), int32(d.k), 0, d.min, d.max)
			fire = min(fire, max(arrival, deadline))
		}
	}
	d.mean = T + T + fire
	d.p99 = time.Duration(math.Log(100)*float64(T)) + T + fire
	d.everyone = d.mean + d.spread
	d.noConfirm = 2*T + d.max
	return d
}

// consulLANConfig is Consul's LAN gossip: memberlist's LAN defaults.
func consulLANConfig() Config {
	c := DefaultLANConfig()
	c.ProbeInterval = time.Second
	c.ProbeTimeout = 500 * time.Millisecond
	c.SuspicionMult = 4
	c.SuspicionMaxTimeoutMult = 6
	return c
}

func TestTuningTable(t *testing.T) {
	sizes := []int{100, 1000, 10000}
	presets := []struct {
		name string
		cfg  Config
	}{
		{"meshd LAN", DefaultLANConfig()},
		{"Consul LAN", consulLANConfig()},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| preset | n | min | max | k | spread | crash→failed mean | p99 | everyone knows | no confirmation | retransmits | push/pull |\n")
	for _, p := range presets {
		for _, n := range sizes {
			d := estimateDetection(p.cfg, n)
			fmt.Fprintf(&b, "| %s | %d | %v | %v | %d | %v | %v | %v | %v | %v | %d | %v |\n",
				p.name, n, d.min, d.max, d.k, d.spread.Round(100*time.Millisecond),
				d.mean.Round(100*time.Millisecond), d.p99.Round(100*time.Millisecond),
				d.everyone.Round(100*time.Millisecond), d.noConfirm.Round(100*time.Millisecond),
				d.retransmit, d.pushPull)
		}
	}
	t.Log(b.String())

	// The LAN preset's promises (README.md, "Tuning"): a crash is
	// declared within 10 s at the 99th percentile up to 10,000 hosts,
	// and the suspicion timeout leaves a suspect at least twice the
	// spread time to hear of it and refute.
	lan := DefaultLANConfig()
	for _, n := range sizes {
		d := estimateDetection(lan, n)
		if d.p99 >= 10*time.Second {
			t.Errorf("n=%d: p99 crash detection %v, want under 10s", n, d.p99)
		}
		if d.everyone >= 10*time.Second {
			t.Errorf("n=%d: mean time until everyone knows %v, want under 10s", n, d.everyone)
		}
		if d.min < 2*d.spread {
			t.Errorf("n=%d: suspicion timeout %v leaves no time to refute (spread %v)", n, d.min, d.spread)
		}
		if d.k < 1 {
			t.Errorf("n=%d: k=%d: Lifeguard's confirmations are off", n, d.k)
		}
	}

	// Bandwidth per node (README.md): gossip ceiling and push/pull.
	g := float64(lan.GossipNodes) * 1400 / lan.GossipInterval.Seconds()
	t.Logf("gossip ceiling per node: %d nodes x 1400 B / %v = %.0f B/s (%.0f kbit/s)",
		lan.GossipNodes, lan.GossipInterval, g, g*8/1000)
	for _, n := range sizes {
		pp := mlPushPullScale(lan.PushPullInterval, n)
		const perMember = 250.0 // bytes of push/pull state per member, tags included
		rate := 2 * float64(n) * perMember / pp.Seconds()
		t.Logf("n=%d: push/pull every %v, %.0f KB per exchange each way, ~%.1f KB/s per node each way; a broadcast is sent %d times per node (~%.1f KB at 250 B)",
			n, pp, float64(n)*perMember/1000, rate/1000, mlRetransmitLimit(lan.RetransmitMult, n),
			float64(mlRetransmitLimit(lan.RetransmitMult, n))*250/1000)
	}
}
