"""More publishers: GStreamer's rtmp2sink, and Enhanced RTMP (HEVC by
FourCC) from a minimal client written here, because Debian's ffmpeg 5.1
cannot publish HEVC over RTMP. Codecs pass through byte for byte."""
import http.client
import json
import signal
import socket
import struct
import subprocess
import time
import unittest

import harness
from harness import Oborod
from test_rtmp import probe, stop, wait_stream


def amf_str(s):
    b = s.encode()
    return b"\x02" + len(b).to_bytes(2, "big") + b


def amf_num(x):
    return b"\x00" + struct.pack(">d", x)


def amf_obj(items):
    out = b"\x03"
    for k, v in items:
        out += len(k).to_bytes(2, "big") + k.encode() + v
    return out + b"\x00\x00\x09"


def chunk(csid, ts, mtype, msid, payload, size=128):
    """A message as a type-0 chunk and type-3 continuations."""
    out = (bytes([csid]) + ts.to_bytes(3, "big") + len(payload).to_bytes(3, "big") +
           bytes([mtype]) + struct.pack("<I", msid))
    out += payload[:size]
    for i in range(size, len(payload), size):
        out += bytes([0xC0 | csid]) + payload[i:i + size]
    return out


class MiniPublisher:
    """Just enough RTMP to publish: simple handshake, connect,
    createStream, publish; replies are read and ignored."""

    def __init__(self, port, name):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.sendall(b"\x03" + bytes(1536))
        got = b""
        while len(got) < 3073:
            got += self.s.recv(8192)
        self.s.sendall(got[1:1537])
        self.s.sendall(chunk(3, 0, 20, 0, amf_str("connect") + amf_num(1) + amf_obj(
            [("app", amf_str("live")), ("tcUrl", amf_str("rtmp://127.0.0.1/live"))])))
        self.s.sendall(chunk(3, 0, 20, 0, amf_str("createStream") + amf_num(2) + b"\x05"))
        self.s.sendall(chunk(4, 0, 20, 1, amf_str("publish") + amf_num(3) + b"\x05" +
                             amf_str(name) + amf_str("live")))

    def video(self, ts, body):
        self.s.sendall(chunk(6, ts, 9, 1, body))

    def close(self):
        self.s.close()


def read_tags(resp, count):
    """Read the FLV header and then count tags: [(type, ts, body)]."""
    head = resp.read(13)
    assert head[:3] == b"FLV", head
    tags = []
    while len(tags) < count:
        h = resp.read(11)
        size = int.from_bytes(h[1:4], "big")
        ts = int.from_bytes(h[4:7], "big") | (h[7] << 24)
        body = resp.read(size)
        trailer = resp.read(4)
        assert int.from_bytes(trailer, "big") == size + 11
        tags.append((h[0], ts, body))
    return tags


class ClientsTest(unittest.TestCase):
    def test_enhanced_rtmp_hevc_passthrough(self):
        seq = b"\x90hvc1" + bytes([1, 1, 0x60, 0, 0, 0]) + bytes(17)   # SequenceStart
        key = b"\x91hvc1" + b"\x00\x00\x00" + b"\x00\x00\x00\x05\x26\x01\xaf\x00\x10"  # CodedFrames
        inter = b"\xa3hvc1" + b"\x00\x00\x00\x04\x02\x01\xd0\x09"       # CodedFramesX
        with Oborod() as d:
            pub = MiniPublisher(d.rtmp_port, "hevc")
            try:
                pub.video(0, seq)
                pub.video(0, key)
                for i in range(1, 30):
                    pub.video(i * 33, inter)
                st = wait_stream(d, "hevc", packets=31)
                self.assertEqual(st["video"]["codec"], "hevc")
                conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=10)
                conn.request("GET", "/live/hevc.flv")
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                # sequence header, then the cached GOP from the keyframe
                tags = read_tags(r, 31)
                self.assertEqual(tags[0], (9, 0, seq))
                self.assertEqual(tags[1][2], key)
                self.assertEqual([t[2] for t in tags[2:]], [inter] * 29)
                self.assertEqual([t[1] for t in tags[1:4]], [0, 33, 66])
                pub.video(30 * 33, key)
                self.assertEqual(read_tags_more(r, 1)[0][2], key)
                conn.close()
            finally:
                pub.close()

    def test_aggregate_messages(self):
        """Relays send runs of FLV tags as one aggregate message (type 22)."""
        def tag(ttype, ts, body):
            return (bytes([ttype]) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big") +
                    bytes([ts >> 24]) + b"\x00\x00\x00" + body + (len(body) + 11).to_bytes(4, "big"))
        seq = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"
        key = b"\x17\x01\x00\x00\x00\x00\x00\x00\x02\x65\x88"
        inter = b"\x27\x01\x00\x00\x00\x00\x00\x00\x02\x41\x9a"
        with Oborod() as d:
            pub = MiniPublisher(d.rtmp_port, "agg")
            try:
                agg = tag(9, 5000, seq) + tag(9, 5000, key) + tag(9, 5033, inter) + tag(9, 5066, inter)
                pub.s.sendall(chunk(6, 1000, 22, 1, agg))
                st = wait_stream(d, "agg", packets=4)
                self.assertEqual(st["video"]["codec"], "h264")
                conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=10)
                conn.request("GET", "/live/agg.flv")
                tags = read_tags(conn.getresponse(), 4)
                self.assertEqual([t[2] for t in tags], [seq, key, inter, inter])
                self.assertEqual([t[1] for t in tags[1:]], [0, 33, 66])
                conn.close()
                # a broken aggregate closes only that publisher
                pub.s.sendall(chunk(6, 2000, 22, 1, b"\x09\x00\x00\x05garbage"))
                pub.s.settimeout(5)
                try:
                    while pub.s.recv(65536):
                        pass
                except ConnectionResetError:
                    pass
                self.assertIn("malformed aggregate message", d.log_text())
            finally:
                pub.close()

    def test_gstreamer_rtmp2sink_publishes(self):
        with Oborod() as d:
            cmd = ["gst-launch-1.0", "-q",
                   "videotestsrc", "is-live=true", "!",
                   "video/x-raw,width=320,height=240,framerate=30/1", "!",
                   "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "key-int-max=30", "!",
                   "h264parse", "!", "flvmux", "name=m", "streamable=true", "!",
                   "rtmp2sink", "location=rtmp://127.0.0.1:%d/live/gst" % d.rtmp_port,
                   "audiotestsrc", "is-live=true", "!", "voaacenc", "!", "aacparse", "!", "m."]
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            harness._live.append(p)
            try:
                wait_stream(d, "gst")
                s = probe(d.url("/live/gst.flv"))
                self.assertEqual(s["video"]["codec_name"], "h264")
                self.assertEqual((s["video"]["width"], s["video"]["height"]), (320, 240))
                self.assertEqual(s["audio"]["codec_name"], "aac")
            finally:
                stop(p)


def read_tags_more(resp, count):
    tags = []
    while len(tags) < count:
        h = resp.read(11)
        size = int.from_bytes(h[1:4], "big")
        body = resp.read(size)
        resp.read(4)
        if h[0] == 9:
            tags.append((h[0], 0, body))
    return tags


if __name__ == "__main__":
    harness.main()
