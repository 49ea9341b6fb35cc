package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// defaultHTTPAddr is where the CLI finds its agent unless -http-addr or
// MESHD_HTTP_ADDR says otherwise.
const defaultHTTPAddr = "127.0.0.1:8500"

// apiClient talks to an agent's HTTP API; every command but agent uses it.
type apiClient struct {
	base string
	http *http.Client
}

// addHTTPFlags registers -http-addr on fs and returns the client it will
// build after parsing.
func addHTTPFlags(fs *flag.FlagSet) func() *apiClient {
	def := defaultHTTPAddr
	if env := os.Getenv("MESHD_HTTP_ADDR"); env != "" {
		def = env
	}
	addr := fs.String("http-addr", def, "Address of the agent's HTTP API (or set MESHD_HTTP_ADDR).")
	return func() *apiClient {
		base := *addr
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		return &apiClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 5 * time.Minute}}
	}
}

// do sends a request and returns the response body of a 2xx answer, or an
// error carrying the agent's message.
func (c *apiClient) do(method, path string, body io.Reader) (io.ReadCloser, error) {
	return c.doAllowing(method, path, body)
}

// doAllowing is do, also taking the status codes in ok as answers.
func (c *apiClient) doAllowing(method, path string, body io.Reader, ok ...int) (io.ReadCloser, error) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the agent at %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 && !slices.Contains(ok, resp.StatusCode) {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// getJSON decodes the answer to a GET into out.
func (c *apiClient) getJSON(path string, out any) error {
	body, err := c.do("GET", path, nil)
	if err != nil {
		return err
	}
	defer body.Close()
	return json.NewDecoder(body).Decode(out)
}

// getJSONAllowing is getJSON, also decoding answers with a status in ok.
func (c *apiClient) getJSONAllowing(path string, out any, ok ...int) error {
	body, err := c.doAllowing("GET", path, nil, ok...)
	if err != nil {
		return err
	}
	defer body.Close()
	return json.NewDecoder(body).Decode(out)
}

// put sends a PUT and discards the answer.
func (c *apiClient) put(path string, body io.Reader) error { return c.send("PUT", path, body) }

// send sends a request and discards the answer.
func (c *apiClient) send(method, path string, body io.Reader) error {
	rc, err := c.do(method, path, body)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}

// fail prints an error the way every command does and returns exit code 1.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "meshd %s: %v\n", cmd, err)
	return 1
}
