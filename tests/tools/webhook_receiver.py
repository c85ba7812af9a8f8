#!/usr/bin/env python3
"""A webhook receiver for the report's notification test: answers the first FAIL POSTs with 503
and the rest with 200, and appends one JSON line per request to LOG: {"status": answered,
"content_type": ..., "body": the request body parsed as JSON (or null)}.

Usage: webhook_receiver.py PORTFILE LOG FAIL

Binds 127.0.0.1 port 0 and writes the port to PORTFILE once it listens. Stops on SIGTERM.
"""
import http.server
import json
import os
import signal
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = 0

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        Handler.seen += 1
        status = 503 if Handler.seen <= FAIL else 200
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps({"status": status,
                                "content_type": self.headers.get("Content-Type"),
                                "body": body}) + "\n")
        reply = b'{"ok":true}' if status == 200 else b'{"ok":false}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


PORTFILE, LOG, FAIL = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
tmp = PORTFILE + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, PORTFILE)
server.serve_forever()
