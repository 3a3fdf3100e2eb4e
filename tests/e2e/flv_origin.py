"""A minimal live HTTP-FLV origin for the fanout tests: serves one FLV file
on /live/NAME.flv as an endless live stream, paced by the tags' timestamps.
Faults on request: NAME 'drops' skips 10 frames every second, 'stalls'
pauses 1.5 s once after 1 s, 'missing' answers 404."""
import http.server
import os
import socketserver
import struct
import threading
import time


def read_tags(path):
    with open(path, "rb") as f:
        data = f.read()
    off = struct.unpack(">I", data[5:9])[0]
    header = data[:off] + b"\0\0\0\0"
    tags, pos = [], off + 4
    while pos + 11 <= len(data):
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | data[pos + 7] << 24
        tags.append((data[pos], ts, bytearray(data[pos:pos + 11 + size + 4])))
        pos += 11 + size + 4
    return header, tags


def with_ts(tag, ts):
    t = bytearray(tag)
    t[4:7] = (ts & 0xFFFFFF).to_bytes(3, "big")
    t[7] = (ts >> 24) & 0xFF
    return bytes(t)


class FlvOrigin:
    def __init__(self, flv_path, port):
        self.header, tags = read_tags(flv_path)
        self.config = [t for t in tags if t[0] == 18 or (t[0] == 9 and t[2][11] & 0x0F == 7 and t[2][12] == 0)]
        self.media = [t for t in tags if t not in self.config]
        self.period = self.media[-1][1] + 40
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                name = os.path.basename(self.path).split(".")[0]
                if name == "missing" or not self.path.endswith(".flv"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/x-flv")
                self.end_headers()
                try:
                    origin.stream(self.wfile, name)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stream(self, out, name):
        out.write(self.header)
        for t in self.config:
            out.write(with_ts(t[2], 0))
        start, loop, stalled = time.monotonic(), 0, False
        while True:
            for kind, ts, tag in self.media:
                ts += loop * self.period
                if name == "drops" and kind == 9 and ts % 1000 < 400 and ts > 500:
                    continue
                if name == "stalls" and not stalled and ts > 1000:
                    stalled = True
                    time.sleep(1.5)
                    start += 1.5  # the stream resumes where it stopped
                delay = start + ts / 1000.0 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                out.write(with_ts(tag, ts))
                out.flush()
            loop += 1

    def close(self):
        self.server.shutdown()
        self.server.server_close()
