"""Live-stream state in the cache with real clients: the WCOUNT, WRANK and
PRESENCE commands through redis-cli and redis-py, presence expiring through
the replicated sweep, and the stream hub's viewer sessions (ffmpeg
publishing, ffmpeg playing over HTTP-FLV and RTMP) showing up as
viewers:APP/NAME, rank:viewers, joins:APP/NAME and rank:views, in
/api/streams and /api/ranking."""
import subprocess
import time
import unittest

import redis

import harness
from harness import Oborod
from test_rtmp import publish, stop


def wait_for(fn, want, timeout=15.0, step=0.1):
    """Poll fn() until it returns want; returns the last value."""
    deadline = time.time() + timeout
    got = fn()
    while got != want and time.time() < deadline:
        time.sleep(step)
        got = fn()
    return got


def play(url):
    """A real viewer: ffmpeg reading the stream without decoding it."""
    p = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
                          "-i", url, "-c", "copy", "-f", "null", "-"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    harness._live.append(p)
    return p


class Commands(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Oborod()
        cls.r = redis.Redis(host="127.0.0.1", port=cls.d.port, decode_responses=True)

    @classmethod
    def tearDownClass(cls):
        cls.r.close()
        cls.d.close()

    def test_wcount(self):
        r = self.r
        self.assertEqual(r.execute_command("WCOUNT.INCR", "c1"), 1)
        self.assertEqual(r.execute_command("WCOUNT.INCR", "c1", "BY", "41"), 42)
        self.assertEqual(r.execute_command("WCOUNT.GET", "c1", "WINDOW", "60"), 42)
        self.assertEqual(r.execute_command("WCOUNT.GET", "nothing", "WINDOW", "60"), 0)
        self.assertEqual(r.type("c1"), "wcount")
        with self.assertRaises(redis.ResponseError):
            r.execute_command("WCOUNT.GET", "c1", "WINDOW", "7200")
        r.set("str", "x")
        with self.assertRaisesRegex(redis.ResponseError, "WRONGTYPE"):
            r.execute_command("WCOUNT.INCR", "str")

    def test_wrank(self):
        r = self.r
        for m, d in (("a", 5), ("b", 9), ("c", 1), ("a", 5)):
            r.execute_command("WRANK.INCRBY", "rk", m, d)
        self.assertEqual(r.execute_command("WRANK.TOP", "rk", 2, "WITHSCORES"), ["a", "10", "b", "9"])
        self.assertEqual(r.execute_command("WRANK.TOP", "rk", 5, "WINDOW", 3600), ["a", "b", "c"])
        self.assertEqual(r.execute_command("WRANK.SCORE", "rk", "b"), 9)
        self.assertEqual(r.execute_command("WRANK.RANK", "rk", "c"), 2)
        self.assertIsNone(r.execute_command("WRANK.SCORE", "rk", "zz"))
        self.assertEqual(r.type("rk"), "wrank")
        self.assertGreater(r.memory_usage("rk"), 0)

    def test_presence_expires_by_replicated_sweep(self):
        r = self.r
        self.assertEqual(r.execute_command("PRESENCE.TOUCH", "p1", "s1", 400, "MIRROR", "zp", "p1"), 1)
        self.assertEqual(r.execute_command("PRESENCE.TOUCH", "p1", "s2", 60000, "MIRROR", "zp", "p1"), 1)
        self.assertEqual(r.execute_command("PRESENCE.TOUCH", "p1", "s2", 60000), 0)
        self.assertEqual(r.execute_command("PRESENCE.COUNT", "p1"), 2)
        self.assertEqual(r.zscore("zp", "p1"), 2)
        self.assertEqual(sorted(r.execute_command("PRESENCE.MEMBERS", "p1")), ["s1", "s2"])
        # s1's deadline passes: the leader's sweep removes it, mirror follows
        self.assertEqual(wait_for(lambda: r.zscore("zp", "p1"), 1, timeout=5), 1)
        self.assertEqual(r.execute_command("PRESENCE.COUNT", "p1"), 1)
        self.assertEqual(r.execute_command("PRESENCE.LEAVE", "p1", "s2"), 1)
        self.assertEqual(r.exists("p1", "zp"), 0)
        # a set whose members all expire is deleted, memory and all
        r.execute_command("PRESENCE.TOUCH", "p2", "x", 200)
        self.assertEqual(r.type("p2"), "presence")
        self.assertEqual(wait_for(lambda: r.exists("p2"), 0, timeout=5), 0)

    def test_generic_commands_and_docs(self):
        r = self.r
        r.execute_command("PRESENCE.TOUCH", "g:p", "m", 60000)
        r.execute_command("WRANK.INCRBY", "g:r", "m", 1)
        r.execute_command("WCOUNT.INCR", "g:c")
        self.assertEqual(sorted(r.scan_iter(match="g:*", _type="presence")), ["g:p"])
        self.assertEqual(sorted(r.scan_iter(match="g:*", _type="wrank")), ["g:r"])
        self.assertEqual(sorted(r.scan_iter(match="g:*", _type="wcount")), ["g:c"])
        self.assertTrue(r.pexpire("g:c", 100))
        self.assertEqual(wait_for(lambda: r.exists("g:c"), 0, timeout=5), 0)
        self.assertEqual(r.delete("g:p", "g:r"), 2)
        out = subprocess.run(["redis-cli", "-p", str(self.d.port), "COMMAND", "DOCS", "presence.touch"],
                             capture_output=True, text=True, timeout=10).stdout
        self.assertIn("Marks a member present", out)
        # the logged forms are not client commands
        for cmd in (["__live.tick"], ["__presence.touchat", "k", "m", "1"]):
            with self.assertRaisesRegex(redis.ResponseError, "unknown command"):
                r.execute_command(*cmd)


class Viewers(unittest.TestCase):
    def test_viewers_counted_ranked_and_dropped(self):
        with Oborod() as d:
            r = redis.Redis(host="127.0.0.1", port=d.port, decode_responses=True)
            pubs, viewers = [], []
            try:
                pubs.append(publish(d, "big", size="320x240", rate=15))
                pubs.append(publish(d, "small", size="320x240", rate=15))
                flv = d.url("/live/big.flv")
                viewers += [play(flv) for _ in range(3)]
                viewers.append(play("rtmp://127.0.0.1:%d/live/small" % d.rtmp_port))

                count = lambda: r.execute_command("PRESENCE.COUNT", "viewers:live/big")
                self.assertEqual(wait_for(count, 3), 3)
                self.assertEqual(wait_for(lambda: r.zscore("rank:viewers", "live/big"), 3), 3)
                self.assertEqual(wait_for(lambda: r.zscore("rank:viewers", "live/small"), 1), 1)
                self.assertEqual(r.zrevrange("rank:viewers", 0, -1), ["live/big", "live/small"])
                self.assertEqual(r.execute_command("WCOUNT.GET", "joins:live/big", "WINDOW", 60), 3)
                self.assertEqual(r.execute_command("WRANK.TOP", "rank:views", 2, "WITHSCORES"),
                                 ["live/big", "3", "live/small", "1"])
                cli = subprocess.run(["redis-cli", "-p", str(d.port), "ZSCORE", "rank:viewers", "live/big"],
                                     capture_output=True, text=True, timeout=10).stdout.strip()
                self.assertEqual(cli, "3")

                status, st = d.http_json("/api/streams/big")
                self.assertEqual(status, 200)
                self.assertEqual(st["viewers"]["shard"], 3)
                status, rank = d.http_json("/api/ranking?window=3600&n=20")
                self.assertEqual(status, 200)
                self.assertEqual([(e["stream"], e["views"], e["viewers"]) for e in rank["ranking"]],
                                 [("live/big", 3, 3), ("live/small", 1, 1)])
                self.assertEqual(d.http_json("/api/ranking?window=60")[0], 400)
                self.assertEqual(d.http_json("/api/ranking?n=x")[0], 400)

                # viewers leave: counts drop well within the presence TTL
                for p in viewers[:2]:
                    stop(p)
                self.assertEqual(wait_for(count, 1, timeout=10), 1)
                self.assertEqual(wait_for(lambda: r.zscore("rank:viewers", "live/big"), 1), 1)
                for p in viewers[2:]:
                    stop(p)
                self.assertEqual(wait_for(lambda: r.exists("viewers:live/big", "viewers:live/small"), 0,
                                          timeout=10), 0)
                self.assertEqual(wait_for(lambda: r.zcard("rank:viewers"), 0), 0)
                # joins stay counted in their windows
                self.assertEqual(r.execute_command("WRANK.SCORE", "rank:views", "live/big", "WINDOW", 3600), 3)
            finally:
                for p in viewers + pubs:
                    stop(p)
                r.close()

    def test_llhls_sessions_count_as_viewers(self):
        """3 HTTP-FLV viewers and 2 LL-HLS sessions of one stream are 5
        viewers; the LL-HLS sessions leave when they stop requesting."""
        with Oborod(args=["--llhls-session-idle-ms", "1000", "--llhls-segment-ms", "1000"]) as d:
            r = redis.Redis(host="127.0.0.1", port=d.port, decode_responses=True)
            pub, viewers = None, []
            try:
                pub = publish(d, "mix", size="320x240", rate=15)
                viewers += [play(d.url("/live/mix.flv")) for _ in range(3)]
                count = lambda: r.execute_command("PRESENCE.COUNT", "viewers:live/mix")
                self.assertEqual(wait_for(count, 3), 3)
                for sid in ("hlsA", "hlsB"):
                    status, _, body = d.http_get("/live/mix/index.m3u8?sid=" + sid, timeout=15)
                    self.assertEqual(status, 200, body)
                    self.assertIn(b"#EXT-X-PART", body)
                self.assertEqual(wait_for(count, 5), 5)
                self.assertEqual(wait_for(lambda: r.zscore("rank:viewers", "live/mix"), 5), 5)
                # no more playlist requests: both sessions idle out and leave
                self.assertEqual(wait_for(count, 3, timeout=10), 3)
                self.assertEqual(wait_for(lambda: r.zscore("rank:viewers", "live/mix"), 3), 3)
            finally:
                for p in viewers + ([pub] if pub else []):
                    stop(p)
                r.close()


if __name__ == "__main__":
    unittest.main()
