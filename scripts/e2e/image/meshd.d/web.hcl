# The demo web service each client host runs (busybox httpd on port 8080),
# registered with its agent at start, as a Consul service definition would be.
service {
  name = "web"
  port = 8080
  tags = ["demo"]
  check {
    id       = "web-http"
    name     = "web answers HTTP"
    http     = "http://127.0.0.1:8080/"
    interval = "2s"
    timeout  = "1s"
  }
}
