// Package e2e holds meshd's end-to-end fault tests: the real static binary
// runs as several hosts in Docker containers on private networks
// (compose.yml: one datacenter of 3 servers and 3 clients with a demo web
// service each; compose-wan.yml: two datacenters whose servers share a WAN
// network), and the tests inject faults from outside with the Docker engine
// (docker kill, docker pause, docker network disconnect, docker restart)
// and assert with the real HTTP API and DNS.
//
// The tests are behind the e2e build tag and run with `make e2e`, which
// builds the image (build-image.sh) and writes the figures each scenario
// measured to RESULTS.md. They need a Docker engine and docker compose (or
// docker-compose); nothing is pulled from a registry.
package e2e
