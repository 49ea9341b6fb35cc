// Command bench-dns measures one agent's DNS interface at scale: it starts
// the real meshd binary in dev mode on loopback, loads it with -services
// services of -instances instances in all (10,000 and 100,000 by default)
// spread over -nodes nodes, checks a few answers, then drives the DNS port
// with dnsperf (installed from Debian's packages when missing) over many
// names, A and SRV questions mixed:
//
//  1. a throughput run: as fast as dnsperf can ask, for -duration;
//
//  2. a latency run: at a fixed -rate for -latency-duration, every
//     answer's latency recorded, reported as percentiles.
//
//     make build && go run ./scripts/bench-dns
//
// Traffic goes to 127.0.0.1 only; every run is bounded in time.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/scripts/internal/agentproc"
	"github.com/miekg/dns"
)

type options struct {
	bin                  string
	services, instances  int
	nodes                int
	names                int
	duration, latencyDur time.Duration
	rates                []int
	clients, outstanding int
	workers              int
	cpuProfile           string
	agentCPUs, perfCPUs  string
	allocProfile         string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "meshd", "bin/meshd", "the meshd binary")
	flag.IntVar(&o.services, "services", 10_000, "services to register")
	flag.IntVar(&o.instances, "instances", 100_000, "instances to register, spread evenly over the services")
	flag.IntVar(&o.nodes, "nodes", 1_000, "nodes the instances run on")
	flag.IntVar(&o.names, "names", 100_000, "questions in dnsperf's input (random services, half A, half SRV)")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "throughput run length (at most 5m)")
	flag.DurationVar(&o.latencyDur, "latency-duration", 10*time.Second, "latency run length (at most 5m)")
	rates := flag.String("rates", "10000,25000,50000", "queries per second of the latency runs, comma-separated")
	flag.IntVar(&o.clients, "clients", 8, "dnsperf clients (source sockets)")
	flag.IntVar(&o.outstanding, "outstanding", 200, "dnsperf's bound on queries in flight")
	flag.IntVar(&o.workers, "workers", 64, "concurrent HTTP clients while loading")
	flag.StringVar(&o.agentCPUs, "agent-cpus", "", "pin the agent to these CPUs (taskset -c list), e.g. 1")
	flag.StringVar(&o.perfCPUs, "dnsperf-cpus", "", "pin dnsperf to these CPUs (taskset -c list), e.g. 0")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the agent's CPU profile during the throughput run to this file")
	flag.StringVar(&o.allocProfile, "allocprofile", "", "write the agent's allocations during the throughput run to this file (instead of -cpuprofile)")
	flag.Parse()
	for _, f := range strings.Split(*rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			fmt.Fprintf(os.Stderr, "bench-dns: -rates: %q is not a positive number\n", f)
			os.Exit(2)
		}
		o.rates = append(o.rates, r)
	}
	if o.duration > 5*time.Minute || o.latencyDur > 5*time.Minute {
		fmt.Fprintln(os.Stderr, "bench-dns: runs are bounded to 5m")
		os.Exit(2)
	}
	if o.services <= 0 || o.instances < o.services || o.nodes <= 0 {
		fmt.Fprintln(os.Stderr, "bench-dns: want services > 0, instances >= services, nodes > 0")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-dns:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	dnsperf, err := ensureDnsperf()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	agent, err := agentproc.StartWrapped(ctx, pin(o.agentCPUs), o.bin, o.workers, "-enable-debug")
	if err != nil {
		return err
	}
	defer agent.Stop()

	start := time.Now()
	per := o.instances / o.services
	if err := agentproc.Parallel(o.instances, o.workers, func(i int) error {
		svc, k := i%o.services, i/o.services
		node := (svc*per + k) % o.nodes // a service's instances on distinct nodes
		body := fmt.Sprintf(`{"Node":"node-%05d","Address":"10.%d.%d.%d","Service":{"ID":"svc-%05d-%d","Service":"svc-%05d","Port":%d}}`,
			node, 1+node>>16, (node>>8)&0xff, node&0xff, svc, k, svc, 20000+k)
		return agent.Put("/v1/catalog/register", body)
	}); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	load := time.Since(start)
	fmt.Printf("loaded %d instances of %d services on %d nodes in %v (%.0f registrations/s)\n",
		o.instances, o.services, o.nodes, load.Round(time.Millisecond), float64(o.instances)/load.Seconds())
	if err := spotCheck(agent.DNSPort, o.services, per); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "bench-dns")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	input := filepath.Join(dir, "queries")
	if err := writeQueries(input, o.names, o.services); err != nil {
		return err
	}

	// Throughput: dnsperf asks as fast as answers come back.
	profiled := make(chan error, 1)
	switch {
	case o.cpuProfile != "":
		go func() { profiled <- profile(agent, "profile", o.cpuProfile, o.duration) }()
	case o.allocProfile != "":
		go func() { profiled <- profile(agent, "allocs", o.allocProfile, o.duration) }()
	default:
		profiled <- nil
	}
	cpu0, _ := agentproc.CPUSeconds(agent.Pid())
	out, err := runDnsperf(ctx, pin(o.perfCPUs), dnsperf, agent.DNSPort, input, o.duration, o.clients, o.outstanding, 0, false)
	if perr := <-profiled; perr != nil {
		fmt.Fprintln(os.Stderr, "bench-dns: cpu profile:", perr)
	}
	if err != nil {
		return err
	}
	cpu1, _ := agentproc.CPUSeconds(agent.Pid())
	st, err := parseSummary(out)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	fmt.Printf("throughput run (%v, %d clients, %d in flight): %.0f answers/s, %d sent, %d lost, avg latency %.3f ms, agent CPU %.0f%% of one core\n",
		o.duration, o.clients, o.outstanding, st.qps, st.sent, st.lost, st.avgLatency*1000, 100*(cpu1-cpu0)/st.runtime)
	fmt.Printf("  rcodes: %s\n", st.rcodes)

	// Latency at fixed rates: every answer's latency, as percentiles.
	// dnsperf -v prints a line per answer, which costs dnsperf CPU on the
	// cores the agent runs on: the figures are an upper bound.
	for _, rate := range o.rates {
		out, err = runDnsperf(ctx, pin(o.perfCPUs), dnsperf, agent.DNSPort, input, o.latencyDur, o.clients, o.outstanding, rate, true)
		if err != nil {
			return err
		}
		lat, st2, err := parseVerbose(out)
		if err != nil {
			return err
		}
		if len(lat) == 0 {
			return errors.New("latency run: no answers")
		}
		slices.Sort(lat)
		pct := func(p float64) string {
			return fmt.Sprintf("%.3f ms", lat[min(len(lat)-1, int(p*float64(len(lat))))]*1000)
		}
		fmt.Printf("latency run at %d queries/s (%v): %.0f answers/s, %d lost; p50 %s, p90 %s, p99 %s, p99.9 %s, max %s\n",
			rate, o.latencyDur, st2.qps, st2.lost, pct(0.50), pct(0.90), pct(0.99), pct(0.999), pct(1))
	}
	return nil
}

// profile saves the agent's profile of kind ("profile" for CPU, "allocs")
// over most of d.
func profile(agent *agentproc.Agent, kind, path string, d time.Duration) error {
	secs := max(1, int(d.Seconds())-2)
	time.Sleep(time.Second) // let the load ramp up
	b, err := agent.GetTimeout(fmt.Sprintf("/debug/pprof/%s?seconds=%d", kind, secs), time.Duration(secs+30)*time.Second)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ensureDnsperf finds dnsperf, installing it from Debian when it is
// missing and we are root.
func ensureDnsperf() (string, error) {
	if p, err := exec.LookPath("dnsperf"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("dnsperf is missing: apt-get install dnsperf")
	}
	fmt.Println("installing dnsperf from Debian's packages")
	install := func() error {
		cmd := exec.Command("apt-get", "install", "-y", "-q", "dnsperf")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install dnsperf: %w\n%s", err, out)
		}
		return nil
	}
	if err := install(); err != nil {
		if out, uerr := exec.Command("apt-get", "update", "-q").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("apt-get update: %w\n%s", uerr, out)
		}
		if err := install(); err != nil {
			return "", err
		}
	}
	return exec.LookPath("dnsperf")
}

// spotCheck asks for a few services over UDP and TCP and wants all their
// instances: the load really landed and DNS serves it.
func spotCheck(port, services, per int) error {
	server := fmt.Sprintf("127.0.0.1:%d", port)
	for _, svc := range []int{0, services / 2, services - 1} {
		for _, q := range []struct {
			net   string
			qtype uint16
		}{{"udp", dns.TypeA}, {"tcp", dns.TypeSRV}} {
			m := new(dns.Msg)
			m.SetQuestion(fmt.Sprintf("svc-%05d.service.consul.", svc), q.qtype)
			c := &dns.Client{Net: q.net, Timeout: 5 * time.Second}
			r, _, err := c.Exchange(m, server)
			if err != nil {
				return fmt.Errorf("spot check %s: %w", m.Question[0].Name, err)
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != per {
				return fmt.Errorf("spot check %s %s over %s: rcode %s, %d answers, want %d",
					m.Question[0].Name, dns.TypeToString[q.qtype], q.net, dns.RcodeToString[r.Rcode], len(r.Answer), per)
			}
		}
	}
	return nil
}

// writeQueries writes dnsperf's input: n random services, A or SRV.
func writeQueries(path string, n, services int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := range n {
		qtype := "A"
		if i%2 == 1 {
			qtype = "SRV"
		}
		fmt.Fprintf(w, "svc-%05d.service.consul %s\n", rand.IntN(services), qtype)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pin is the taskset prefix for a CPU list, nil for none.
func pin(cpus string) []string {
	if cpus == "" {
		return nil
	}
	return []string{"taskset", "-c", cpus}
}

// runDnsperf runs one dnsperf pass, under wrap when given, and returns its
// output.
func runDnsperf(ctx context.Context, wrap []string, bin string, port int, input string, d time.Duration, clients, outstanding, rate int, verbose bool) (string, error) {
	secs := max(1, int(d.Seconds()))
	args := []string{"-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", input, "-l", strconv.Itoa(secs),
		"-c", strconv.Itoa(clients), "-q", strconv.Itoa(outstanding), "-T", "1", "-t", "2"}
	if rate > 0 {
		args = append(args, "-Q", strconv.Itoa(rate))
	}
	if verbose {
		args = append(args, "-v")
	}
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	argv := append(append(slices.Clone(wrap), bin), args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("dnsperf %s: %w\n%s", strings.Join(args, " "), err, lastLines(string(out), 20))
	}
	return string(out), nil
}

type summary struct {
	sent, lost      int
	qps, avgLatency float64
	runtime         float64
	rcodes          string
}

var (
	reSent    = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	reLost    = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reQPS     = regexp.MustCompile(`Queries per second:\s+([\d.]+)`)
	reAvg     = regexp.MustCompile(`Average Latency \(s\):\s+([\d.]+)`)
	reRuntime = regexp.MustCompile(`Run time \(s\):\s+([\d.]+)`)
	reRcodes  = regexp.MustCompile(`Response codes:\s+(.*)`)
)

func parseSummary(out string) (summary, error) {
	var s summary
	num := func(re *regexp.Regexp) (float64, bool) {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(m[1], 64)
		return v, err == nil
	}
	sent, ok1 := num(reSent)
	lost, ok2 := num(reLost)
	qps, ok3 := num(reQPS)
	avg, ok4 := num(reAvg)
	rt, ok5 := num(reRuntime)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return s, errors.New("cannot read dnsperf's summary")
	}
	s.sent, s.lost, s.qps, s.avgLatency, s.runtime = int(sent), int(lost), qps, avg, rt
	if m := reRcodes.FindStringSubmatch(out); m != nil {
		s.rcodes = m[1]
	}
	return s, nil
}

// parseVerbose reads the latencies (seconds) of dnsperf -v's per-answer
// lines ("> NOERROR svc-00042.service.consul A 0.000123") and the summary.
func parseVerbose(out string) ([]float64, summary, error) {
	var lat []float64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "> ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			lat = append(lat, v)
		}
	}
	s, err := parseSummary(out)
	return lat, s, err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
