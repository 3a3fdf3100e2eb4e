"""Banner blur end to end: clips made here by ffmpeg (testsrc2 with light
and dark notification banners sliding in from the top, drawn with drawbox
and drawtext; and a clip without banners) are published with ?blur=1, read
back over HTTP-FLV by ffmpeg, decoded to raw luma and compared with the
source frame by frame: inside the banner the high-frequency energy drops
by >= 90% on every frame where the banner shows; outside it PSNR >= 40 dB;
on banner-free content nothing is blurred."""
import os
import socket
import struct
import subprocess
import threading
import tempfile
import time
import unittest

import numpy as np

import harness
from harness import Oborod

FFMPEG = "ffmpeg"
W, H, FPS = 640, 360, 30
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# banner geometry (pixels) and timing: it slides in from above the frame
# from T0 to its rest position Y_REST at SPEED px/s
BX, BW, BH, Y_REST, T0, SPEED = 40, 560, 72, 12, 1.5, 300.0


def banner_y(t):
    if t < T0:
        return None
    return min(Y_REST, -BH + (t - T0) * SPEED)


def run(cmd, timeout=60):
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("%s failed: %s" % (cmd[0], r.stderr.decode()[-2000:]))
    return r


def make_clip(path, style, seconds):
    """H.264 (GOP 1 s) + AAC FLV of testsrc2, with a banner of style
    'light' / 'dark' sliding in at T0, or none."""
    graph = "testsrc2=s=%dx%d:r=%d:d=%g[bg]" % (W, H, FPS, seconds)
    if style != "none":
        fill, ink = ("0xEEEEEE", "0x202020") if style == "light" else ("0x2A2A2A", "0xF2F2F2")
        graph += (";color=c=%s:s=%dx%d:r=%d:d=%g,drawbox=x=0:y=0:w=%d:h=%d:color=%s:t=fill,"
                  "drawtext=fontfile=%s:text='Alice - are you coming tonight?':x=16:y=12:"
                  "fontsize=20:fontcolor=%s,"
                  "drawtext=fontfile=%s:text='Meet at 8, bring the tickets 4471':x=16:y=42:"
                  "fontsize=18:fontcolor=%s[ban];"
                  "[bg][ban]overlay=x=%d:y='if(lt(t,%g),-%d,min(%d,-%d+(t-%g)*%g))':eval=frame"
                  % (fill, BW, BH, FPS, seconds, BW, BH, fill, FONT, ink, FONT, ink,
                     BX, T0, BH + 10, Y_REST, BH, T0, SPEED))
    else:
        graph += ";[bg]null"
    run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-filter_complex", graph, "-f", "lavfi", "-i", "sine=f=440:r=44100:d=%g" % seconds,
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", str(FPS), "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", "-f", "flv", path])


def luma_frames(path):
    r = run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", path,
             "-f", "rawvideo", "-pix_fmt", "gray", "-fps_mode", "passthrough", "-"])
    n = len(r.stdout) // (W * H)
    return np.frombuffer(r.stdout[:n * W * H], dtype=np.uint8).reshape(n, H, W).astype(np.int32)


def hf_energy(a):
    dx = np.diff(a, axis=1)[:-1, :]
    dy = np.diff(a, axis=0)[:, :-1]
    return float((dx * dx).sum() + (dy * dy).sum())


def psnr(a, b):
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255.0 * 255.0 / mse)


def align(src, out):
    """Index of the source frame the first output frame shows."""
    best, bi = None, 0
    for i in range(len(src)):
        d = float(np.abs(src[i] - out[0]).mean())
        if best is None or d < best:
            best, bi = d, i
    return bi


def relay(d, name, src, out, key="?blur=1", readrate=None):
    """Publish src to d as name+key, read it back over HTTP-FLV into out."""
    pub_cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"]
    pub_cmd += ["-readrate", str(readrate)] if readrate else ["-re"]
    pub_cmd += ["-i", src, "-c", "copy", "-f", "flv",
                "rtmp://127.0.0.1:%d/live/%s%s" % (d.rtmp_port, name, key)]
    pub = subprocess.Popen(pub_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, start_new_session=True)
    harness._live.append(pub)
    deadline = time.time() + 10
    while time.time() < deadline:
        status, _ = d.http_json("/api/streams/" + name)
        if status == 200:
            break
        time.sleep(0.05)
    reader = subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                               "-i", d.url("/live/%s.flv" % name), "-c", "copy", "-f", "flv", out],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    harness._live.append(reader)
    # the stream's status, last seen while it runs
    info = None
    while pub.poll() is None:
        status, body = d.http_json("/api/streams/" + name)
        if status == 200:
            info = body
        time.sleep(0.1)
    reader.wait(timeout=30)
    return info


def amf_str(v):
    b = v.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def amf_num(v):
    return b"\x00" + struct.pack(">d", v)


def amf_obj(d):
    out = b"\x03"
    for k, v in d.items():
        kb = k.encode()
        out += struct.pack(">H", len(kb)) + kb + (amf_num(v) if isinstance(v, (int, float))
                                                   else amf_str(v))
    return out + b"\x00\x00\x09"


CHUNK = 4096


def rtmp_msg(csid, ts, mtype, msid, payload):
    """One message: a type-0 chunk, then type-3 chunks of CHUNK bytes."""
    out = (bytes([csid]) + min(ts, 0xFFFFFF).to_bytes(3, "big") + len(payload).to_bytes(3, "big") +
           bytes([mtype]) + struct.pack("<I", msid) + payload[:CHUNK])
    for i in range(CHUNK, len(payload), CHUNK):
        out += bytes([0xC0 | csid]) + payload[i:i + CHUNK]
    return out


def flv_tags(path):
    data = open(path, "rb").read()
    pos = int.from_bytes(data[5:9], "big") + 4
    while pos + 11 <= len(data):
        t, size = data[pos], int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        yield t, ts, data[pos + 11:pos + 11 + size]
        pos += 11 + size + 4


def rtmp_publish_with_notification(d, name, flv, note_at_ms, note):
    """A minimal RTMP publisher (the app side): publishes the tags of flv
    in real time and sends an onNotification data message at note_at_ms."""
    s = socket.create_connection(("127.0.0.1", d.rtmp_port), timeout=10)
    s.sendall(b"\x03" + b"\x00" * 1536)
    got = b""
    while len(got) < 1 + 2 * 1536:
        b = s.recv(8192)
        if not b:
            raise AssertionError("closed during handshake")
        got += b
    s.sendall(got[1:1 + 1536])
    stop = threading.Event()

    def drain():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                if not s.recv(65536):
                    return
            except socket.timeout:
                pass
            except OSError:
                return
    t = threading.Thread(target=drain)
    t.start()
    try:
        s.sendall(rtmp_msg(2, 0, 1, 0, struct.pack(">I", 128)))
        s.sendall(rtmp_msg(2, 0, 1, 0, struct.pack(">I", CHUNK)))
        s.sendall(rtmp_msg(3, 0, 20, 0, amf_str("connect") + amf_num(1) +
                           amf_obj({"app": "live", "type": "nonprivate"})))
        s.sendall(rtmp_msg(3, 0, 20, 0, amf_str("createStream") + amf_num(2) + b"\x05"))
        time.sleep(0.3)
        s.sendall(rtmp_msg(4, 0, 20, 1, amf_str("publish") + amf_num(3) + b"\x05" +
                           amf_str(name + "?blur=1") + amf_str("live")))
        time.sleep(0.3)
        start, sent_note = time.time(), False
        for typ, ts, body in flv_tags(flv):
            delay = ts / 1000.0 - (time.time() - start)
            if delay > 0:
                time.sleep(delay)
            if not sent_note and ts >= note_at_ms:
                s.sendall(rtmp_msg(5, ts, 18, 1, amf_str("onNotification") + amf_obj(note)))
                sent_note = True
            s.sendall(rtmp_msg(6 if typ == 9 else 7 if typ == 8 else 5, ts, typ, 1, body))
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
        s.close()


class BlurTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = Oborod(args=["--publish-grace-ms", "0"])
        cls.d.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.tmp.cleanup()

    def banner_case(self, style):
        src = os.path.join(self.tmp.name, style + ".flv")
        out = os.path.join(self.tmp.name, style + "-out.flv")
        make_clip(src, style, 3.0)
        info = relay(self.d, "b" + style, src, out)
        self.assertTrue(info["blur"]["on"], info)
        self.assertEqual(info["blur"]["status"], "on", info)
        s = luma_frames(src)
        o = luma_frames(out)
        self.assertGreater(len(o), 40)
        first = align(s, o)
        seen = 0
        outside_psnr = []
        for k in range(len(o)):
            i = first + k
            if i >= len(s):
                break
            y = banner_y(i / FPS)
            mask = np.ones((H, W), dtype=bool)
            if y is not None and y + BH > 0:
                y0, y1 = max(0, int(np.floor(y))), int(np.ceil(y + BH))
                a, b = s[i, y0:y1, BX:BX + BW], o[k, y0:y1, BX:BX + BW]
                before, after = hf_energy(a), hf_energy(b)
                # a strip of plain fill has nothing to read
                if before > 20.0 * a.size:
                    self.assertLessEqual(after, 0.10 * before,
                                         "frame %d (banner y=%.0f): energy %.0f -> %.0f"
                                         % (i, y, before, after))
                    seen += 1
                # outside: away from the banner and the blur's margin
                mask[:min(H, y1 + 40), :] = False
            elif banner_y((i + 2) / FPS) is not None:
                # the detector covers a banner's track up to 2 frames
                # before it shows (output is delayed by that much)
                mask[:Y_REST + BH + 40, :] = False
            outside_psnr.append(psnr(s[i][mask], o[k][mask]))
        self.assertGreater(seen, 20)
        self.assertGreaterEqual(min(outside_psnr), 40.0)

    def test_light_banner(self):
        self.banner_case("light")

    def test_dark_banner(self):
        self.banner_case("dark")

    def test_no_banner(self):
        src = os.path.join(self.tmp.name, "none.flv")
        out = os.path.join(self.tmp.name, "none-out.flv")
        make_clip(src, "none", 3.0)
        info = relay(self.d, "bnone", src, out)
        self.assertEqual(info["blur"]["status"], "on", info)
        self.assertGreater(info["blur"]["frames_out"], 40, info)
        self.assertEqual(info["blur"]["frames_blurred"], 0, info)
        s = luma_frames(src)
        o = luma_frames(out)
        first = align(s, o)
        n = min(len(o), len(s) - first)
        self.assertGreater(n, 40)
        self.assertGreaterEqual(min(psnr(s[first + k], o[k]) for k in range(n)), 40.0)

    def test_static_regions(self):
        """POST /api/streams/NAME/blur sets static regions, blurred from
        then on; malformed ones and unknown streams are refused."""
        import urllib.request
        src = os.path.join(self.tmp.name, "static.flv")
        out = os.path.join(self.tmp.name, "static-out.flv")
        make_clip(src, "none", 4.0)

        def post(path):
            req = urllib.request.Request(self.d.url(path), data=b"", method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        self.assertEqual(post("/api/streams/nosuch/blur?on=1")[0], 404)
        import threading
        res = {}

        def later():
            deadline = time.time() + 10
            while time.time() < deadline:
                st, _ = self.d.http_json("/api/streams/bstatic")
                if st == 200:
                    break
                time.sleep(0.05)
            res["bad"] = post("/api/streams/bstatic/blur?regions=1,2,3")
            res["ok"] = post("/api/streams/bstatic/blur?regions=320,200,160,100")
        t = threading.Thread(target=later)
        t.start()
        info = relay(self.d, "bstatic", src, out)
        t.join()
        self.assertEqual(res["bad"][0], 400, res)
        self.assertEqual(res["ok"][0], 200, res)
        self.assertIn('"static_regions":1', res["ok"][1])
        self.assertEqual(info["blur"]["static_regions"], 1, info)
        s = luma_frames(src)
        o = luma_frames(out)
        first = align(s, o)
        # the last second: the region is blurred, the rest is not
        for k in range(len(o) - 30, len(o) - 3):
            i = first + k
            a, b = s[i, 210:290, 330:470], o[k, 210:290, 330:470]
            self.assertLessEqual(hf_energy(b), 0.10 * hf_energy(a), "frame %d" % i)
            self.assertGreaterEqual(psnr(s[i, :150], o[k, :150]), 40.0)

    def test_long_banner_free_content(self):
        """60 s of moving content without banners (read at 6x): nothing is
        blurred."""
        global W, H
        src = os.path.join(self.tmp.name, "long.flv")
        out = os.path.join(self.tmp.name, "long-out.flv")
        run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
             "-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=60", "-c:v", "libx264",
             "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-f", "flv", src], timeout=120)
        info = relay(self.d, "blong", src, out, readrate=6)
        self.assertEqual(info["blur"]["status"], "on", info)
        self.assertGreater(info["blur"]["frames_in"], 1500, info)
        self.assertEqual(info["blur"]["frames_blurred"], 0, info)

    def test_turn_off(self):
        """on=0 through the API: viewers get the source's video again."""
        import threading
        import urllib.request
        src = os.path.join(self.tmp.name, "off.flv")
        out = os.path.join(self.tmp.name, "off-out.flv")
        make_clip(src, "none", 4.0)
        res = {}

        def later():
            deadline = time.time() + 10
            while time.time() < deadline:
                st, _ = self.d.http_json("/api/streams/boff")
                if st == 200:
                    break
                time.sleep(0.05)
            for q in ("regions=0,0,640,360", "on=0"):
                time.sleep(1.0)
                req = urllib.request.Request(self.d.url("/api/streams/boff/blur?" + q), data=b"",
                                             method="POST")
                with urllib.request.urlopen(req, timeout=10) as r:
                    res[q] = r.read().decode()
        t = threading.Thread(target=later)
        t.start()
        info = relay(self.d, "boff", src, out)
        t.join()
        self.assertIn('"status":"off"', res["on=0"])
        self.assertEqual(info["blur"]["status"], "off", info)
        s = luma_frames(src)
        o = luma_frames(out)
        # the whole frame was blurred for a while; the last frames are the
        # source's own
        self.assertLess(min(psnr(s[align(s, o[k:k + 1])], o[k]) for k in range(len(o))), 30)
        for k in range(len(o) - 10, len(o)):
            self.assertEqual(psnr(s[align(s, o[k:k + 1])], o[k]), 99.0)

    def test_app_notification_region(self):
        """An onNotification data message from the app blurs its rectangle
        for its duration."""
        src = os.path.join(self.tmp.name, "note.flv")
        out = os.path.join(self.tmp.name, "note-out.flv")
        make_clip(src, "none", 3.0)
        note = {"x": 300, "y": 180, "width": 200, "height": 100, "duration": 30}
        reader = {}

        def read():
            deadline = time.time() + 10
            while time.time() < deadline:
                if self.d.http_json("/api/streams/bnote")[0] == 200:
                    break
                time.sleep(0.05)
            reader["p"] = subprocess.run(
                [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                 "-i", self.d.url("/live/bnote.flv"), "-c", "copy", "-f", "flv", out],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        t = threading.Thread(target=read)
        t.start()
        rtmp_publish_with_notification(self.d, "bnote", src, 1000, note)
        t.join()
        self.assertIn("notification region", self.d.log_text())
        s = luma_frames(src)
        o = luma_frames(out)
        first = align(s, o)
        for k in range(len(o) - 20, len(o) - 3):
            i = first + k
            a, b = s[i, 190:270, 310:490], o[k, 190:270, 310:490]
            self.assertLessEqual(hf_energy(b), 0.10 * hf_energy(a), "frame %d" % i)
            self.assertGreaterEqual(psnr(s[i, :150], o[k, :150]), 40.0)

    def test_resolution_change_falls_back(self):
        """The source switches from 320x240 to 640x360 mid-stream: the
        pipeline gives up (log line, status), viewers keep getting video."""
        parts = []
        for i, size in enumerate(("320x240", "640x360")):
            part = os.path.join(self.tmp.name, "res%d.ts" % i)
            run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                 "-f", "lavfi", "-i", "testsrc2=s=%s:r=30:d=1.5" % size, "-c:v", "libx264",
                 "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p", "-f", "mpegts", part])
            parts.append(part)
        src = os.path.join(self.tmp.name, "res.flv")
        run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
             "-i", "concat:" + "|".join(parts), "-c", "copy", "-f", "flv", src])
        out = os.path.join(self.tmp.name, "res-out.flv")
        info = relay(self.d, "bres", src, out)
        self.assertEqual(info["blur"]["status"], "passthrough", info)
        self.assertEqual(info["blur"]["reason"], "resolution changed mid-stream", info)
        self.assertIn("blur pipeline failed", self.d.log_text())
        r = run(["ffprobe", "-hide_banner", "-v", "error", "-count_frames", "-show_entries",
                 "stream=nb_read_frames", "-of", "csv=p=0", out])
        self.assertGreater(int(r.stdout.decode().strip().split(",")[0]), 40)

    def test_unsupported_codec_falls_back(self):
        """A codec the encoder cannot match: one log line, status flag, and
        viewers get the source's video."""
        src = os.path.join(self.tmp.name, "flv1.flv")
        out = os.path.join(self.tmp.name, "flv1-out.flv")
        run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
             "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=2", "-c:v", "flv1", "-g", "30",
             "-f", "flv", src])
        info = relay(self.d, "bflv1", src, out)
        self.assertEqual(info["blur"]["status"], "passthrough", info)
        self.assertTrue(info["blur"]["failed"], info)
        self.assertIn("codec", info["blur"]["reason"])
        self.assertIn("blur pipeline failed", self.d.log_text())
        r = run(["ffprobe", "-hide_banner", "-v", "error", "-count_frames", "-show_entries",
                 "stream=codec_name,nb_read_frames", "-of", "csv=p=0", out])
        codec, frames = r.stdout.decode().strip().split(",")[:2]
        self.assertEqual(codec, "flv1")
        self.assertGreater(int(frames), 20)


class BlurDefaultTest(unittest.TestCase):
    def test_blur_default_and_key_override(self):
        """blur-default yes blurs streams without a blur= option; ?blur=0
        opts out."""
        with tempfile.TemporaryDirectory() as tmp, \
                Oborod(args=["--blur-default", "yes", "--publish-grace-ms", "0"]) as d:
            src = os.path.join(tmp, "small.flv")
            run([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                 "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=1.5", "-c:v", "libx264",
                 "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-f", "flv", src])
            on = relay(d, "dflt", src, os.path.join(tmp, "a.flv"), key="")
            off = relay(d, "optout", src, os.path.join(tmp, "b.flv"), key="?blur=0")
            self.assertEqual(on["blur"]["status"], "on", on)
            self.assertGreater(on["blur"]["frames_out"], 0, on)
            self.assertEqual(off["blur"], {"on": False}, off)


if __name__ == "__main__":
    harness.main()
