"""An HTTP proxy bound to 127.0.0.1 that adds a fixed delay to every request before forwarding
it to one upstream server: what concurrency buys against a real object store's latency.

usage: latency_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS
"""
import http.client, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

listen, upstream, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000
# One kept-alive upstream connection per client connection (thread): the proxy adds the delay,
# not a TCP handshake per request.
local = threading.local()


def upstream_conn(fresh=False):
    if fresh or getattr(local, "conn", None) is None:
        local.conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=300)
    return local.conn


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The whole answer in one write, without Nagle's delay: only the fixed delay is added.
    wbufsize = 1 << 16

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def forward(self):
        time.sleep(delay)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        for attempt in (0, 1):
            conn = upstream_conn(fresh=attempt == 1)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                if attempt == 1:
                    raise
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", listen), Proxy).serve_forever()
