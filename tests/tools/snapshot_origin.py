#!/usr/bin/env python3
"""A snapshot origin that tests control: serves whatever is in a directory, the way a control
plane or a mirror would, so that tests can hand an assign node broken files and manifests.

Usage: snapshot_origin.py DIR PORTFILE

  GET /v1/snapshots/latest   DIR/manifest.json (503 when absent), with an ETag of its bytes and
                             304 on If-None-Match
  GET /files/NAME            DIR/files/NAME; when DIR/files/NAME.length exists, that number is
                             sent as Content-Length (a longer one cuts the transfer short)
  DIR/status                 when it exists, every request gets that HTTP status instead

Binds 127.0.0.1 port 0 and writes the port to PORTFILE once it listens. Stops on SIGTERM.
"""
import hashlib
import http.server
import os
import signal
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the test prints what matters
        pass

    def send_bytes(self, status, body, ctype, etag=None, length=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Connection", "close")
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        if status != 304:
            self.wfile.write(body)
        self.close_connection = True

    def do_GET(self):
        root = self.server.root
        status_file = os.path.join(root, "status")
        if os.path.exists(status_file):
            with open(status_file) as f:
                self.send_bytes(int(f.read().strip()), b"{}", "application/json")
            return
        if self.path == "/v1/snapshots/latest":
            path = os.path.join(root, "manifest.json")
            if not os.path.exists(path):
                self.send_bytes(503, b"{}", "application/json")
                return
            with open(path, "rb") as f:
                body = f.read()
            etag = '"%s"' % hashlib.sha256(body).hexdigest()[:16]
            if self.headers.get("If-None-Match") == etag:
                self.send_bytes(304, b"", "application/json", etag)
                return
            self.send_bytes(200, body, "application/json", etag)
            return
        if self.path.startswith("/files/") and "/" not in self.path[7:]:
            path = os.path.join(root, "files", self.path[7:])
            if os.path.exists(path):
                with open(path, "rb") as f:
                    body = f.read()
                length = None
                if os.path.exists(path + ".length"):
                    with open(path + ".length") as f:
                        length = int(f.read().strip())
                self.send_bytes(200, body, "application/vnd.sqlite3", length=length)
                return
        self.send_bytes(404, b"{}", "application/json")


def main():
    root, portfile = sys.argv[1], sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.root = root
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, portfile)
    server.serve_forever()


if __name__ == "__main__":
    main()
