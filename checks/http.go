package checks

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// httpUserAgent is sent unless the check sets its own; services that
// recognise Consul's health checks by it keep doing so.
const httpUserAgent = "Consul Health Check"

// newHTTPClient returns the client shared by a runner's HTTP checks.
//
// Keep-alives are off: each probe opens a fresh connection, as a new
// client would (a pooled connection would hide a server that no longer
// accepts), and no socket is held between runs, however many checks run.
// Proxies from the environment are not used: a check tests the service,
// not the path through a proxy. Redirects are followed, at most 10, as
// Consul does.
func newHTTPClient(skipVerify bool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:            (&net.Dialer{KeepAlive: -1}).DialContext,
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 64 << 10,
			TLSClientConfig: &tls.Config{
				InsecureSkipVerify: skipVerify, //nolint:gosec // the check's owner asked for it
				MinVersion:         tls.VersionTLS12,
			},
		},
	}
}

// probeHTTP requests the check's URL: 2xx is passing, 429 (Too Many
// Requests) warning, anything else or no answer critical. The output is
// "HTTP <method> <url>: <status line> Output: <start of body>".
func (c *check) probeHTTP(ctx context.Context) (status, output string) {
	var body io.Reader
	if c.def.Body != "" {
		body = strings.NewReader(c.def.Body)
	}
	req, err := http.NewRequestWithContext(ctx, c.def.Method, c.def.HTTP, body)
	if err != nil {
		return StatusCritical, err.Error()
	}
	for name, values := range c.def.Header {
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", httpUserAgent)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/plain, text/*, */*")
	}
	client := c.r.httpClient
	if c.def.TLSSkipVerify {
		client = c.r.httpSkipClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return StatusCritical, timeoutNote(ctx, c.def.Timeout, err.Error())
	}
	defer resp.Body.Close()
	// Only the start of the body is kept; the connection is not reused,
	// so the rest is not read at all.
	buf, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.def.OutputMaxSize)))
	output = "HTTP " + c.def.Method + " " + c.def.HTTP + ": " + resp.Status + " Output: " + trimPartialRune(string(buf))
	if err != nil {
		return StatusCritical, timeoutNote(ctx, c.def.Timeout, output+"\nreading body: "+err.Error())
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return StatusPassing, output
	case resp.StatusCode == http.StatusTooManyRequests:
		return StatusWarning, output
	}
	return StatusCritical, output
}

// timeoutNote prefixes output with a plain statement when the probe ran
// out of time, since the error alone ("context deadline exceeded") says it
// badly.
func timeoutNote(ctx context.Context, timeout time.Duration, output string) string {
	if ctx.Err() == context.DeadlineExceeded {
		return "Timed out (" + timeout.String() + "): " + output
	}
	return output
}
