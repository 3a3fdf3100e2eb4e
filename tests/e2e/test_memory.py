"""Memory figures of a running oborod (/debug/memory, /metrics, INFO memory)
and RSS that follows load back down once the load is gone.

The load is what the daemon serves: many RESP and HTTP connections always;
when the cache answers SET, a keyspace of 300-byte values, emptied by
FLUSHALL (and, when the cache registers a compaction walker, thinned by a
random 90% DEL). RSS assertions apply to allocator=arena only; under
allocator=system (the sanitizer pass) the figures are still checked for
consistency."""
import json
import random
import re
import socket
import time
import unittest

import harness
from harness import Oborod

try:
    import redis
except ImportError:  # python3-redis is in scripts/packages-test.txt
    redis = None

MB = 1024 * 1024


def memory(d):
    status, body = d.http_json("/debug/memory")
    assert status == 200, status
    return body


def metrics(d):
    status, _, body = d.http_get("/metrics")
    assert status == 200, status
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def wait_for(pred, timeout, step=0.05):
    """Poll pred() until it returns a true value or timeout seconds pass;
    returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def resp_ping(sock):
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(64)
        if not chunk:
            raise AssertionError("connection closed before PONG")
        buf += chunk
    return buf


def anonymous(d):
    """Anonymous resident bytes of the daemon (heap, stacks): what the
    allocator controls. Private RSS also holds library code, which counts
    as private or shared depending on how many other processes map it at
    that moment, and other tests run oborods in parallel."""
    with open("/proc/%d/smaps_rollup" % d.proc.pid) as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) * 1024
    return 0


class MemoryTest(unittest.TestCase):
    def test_figures_are_consistent(self):
        with Oborod() as d:
            m = memory(d)
            for key in ("allocator", "rss", "rss_private", "rss_lazyfree", "rss_anon_huge",
                        "live_bytes", "heap_mapped", "heap_active", "heap_free_retained",
                        "heap_purged_total", "rss_private_per_live", "spans", "tags"):
                self.assertIn(key, m)
            self.assertIn(m["allocator"], ("arena", "system"))
            self.assertEqual(set(m["spans"]), {"active", "retained", "purged"})
            # live bytes are the sum over tags, and the tags are the subsystems
            self.assertEqual(m["live_bytes"], sum(t["bytes"] for t in m["tags"].values()))
            for name in ("cache.keys", "cache.values", "hub.packets", "rtmp.conn", "raft.log"):
                self.assertIn(name, m["tags"])
            self.assertGreater(m["tags"]["core"]["objects"], 0)
            self.assertGreater(m["rss_private"], 0)
            self.assertGreaterEqual(m["rss"], m["rss_private"])
            self.assertEqual(m["rss_lazyfree"], 0)
            if m["allocator"] == "arena":
                self.assertGreater(m["heap_mapped"], 0)
                self.assertGreaterEqual(m["heap_mapped"], m["heap_active"])
                self.assertGreater(m["spans"]["active"], 0)
                self.assertAlmostEqual(m["rss_private_per_live"],
                                       m["rss_private"] / m["live_bytes"], delta=0.5)
            # /metrics carries the same figures as gauges
            g = metrics(d)
            m2 = memory(d)
            for tag, t in m2["tags"].items():
                self.assertIn('oboro_memory_live_bytes{tag="%s"}' % tag, g)
                self.assertIn('oboro_memory_live_objects{tag="%s"}' % tag, g)
            self.assertEqual(g['oboro_memory_live_objects{tag="core"}'],
                             m2["tags"]["core"]["objects"])
            self.assertEqual(g["oboro_memory_heap_mapped_bytes"], m2["heap_mapped"])
            self.assertEqual(g["oboro_memory_lazyfree_bytes"], 0)
            for state in ("active", "retained", "purged"):
                self.assertIn('oboro_memory_spans{state="%s"}' % state, g)
            self.assertAlmostEqual(g["oboro_memory_rss_private_bytes"], m2["rss_private"],
                                   delta=4 * MB)

    def test_connections_come_and_go(self):
        """1000 RESP connections and 200 HTTP requests: the connection tags
        rise, and after the clients leave every object is gone, the
        allocator holds no free memory past the purge delay and private RSS
        is back within 5 MB of where it started (libevent's buffers are
        allocated by the arena too, tagged net)."""
        with Oborod(args=["--mem-purge-delay-ms", "200"]) as d:
            base = memory(d)
            base_anon = anonymous(d)
            self.assertEqual(base["purge_delay_ms"], 200)
            socks = []
            try:
                for _ in range(1000):
                    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                    socks.append(s)
                for s in socks:
                    self.assertEqual(resp_ping(s), b"+PONG\r\n")
                for _ in range(200):
                    self.assertEqual(d.http_get("/healthz")[0], 200)
                loaded = memory(d)
                objs = lambda m: sum(t["objects"] for t in m["tags"].values())
                self.assertGreaterEqual(objs(loaded) - objs(base), 1000)
                self.assertGreater(loaded["live_bytes"] - base["live_bytes"], 1000 * 64)
                self.assertGreater(loaded["tags"]["net"]["objects"], base["tags"]["net"]["objects"])
                self.assertGreater(loaded["tags"]["resp.conn"]["objects"],
                                   base["tags"]["resp.conn"]["objects"] + 999)
            finally:
                for s in socks:
                    s.close()

            def settled():
                m = memory(d)
                if m["tags"]["resp.conn"]["objects"] != base["tags"]["resp.conn"]["objects"]:
                    return None
                if m["allocator"] == "arena" and (
                        m["heap_free_retained"] > 0 or anonymous(d) > base_anon + 5 * MB):
                    return None
                return m

            after = wait_for(settled, 5.0)
            self.assertIsNotNone(after, "connections' memory not released: %s" % memory(d))
            self.assertEqual(after["tags"]["resp.conn"]["bytes"], base["tags"]["resp.conn"]["bytes"])
            self.assertEqual(after["rss_lazyfree"], 0)

    def _cache_or_skip(self, d):
        if redis is None:
            self.skipTest("python3-redis missing")
        probe = redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=2)
        try:
            ok = probe.set("oboro:probe", "x")
            probe.delete("oboro:probe")
        except (redis.exceptions.ResponseError, redis.exceptions.TimeoutError,
                redis.exceptions.ConnectionError):
            ok = False
        finally:
            probe.close()
        if not ok:
            self.skipTest("the cache does not serve SET yet")
        return redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=60)

    def _fill(self, r, n, size):
        value = b"v" * size
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            pipe.set(b"key:%07d" % i, value)
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()

    def test_flushall_returns_rss(self):
        with Oborod(args=["--mem-purge-delay-ms", "200"]) as d:
            r = self._cache_or_skip(d)
            try:
                time.sleep(0.5)
                empty = memory(d)
                empty_anon = anonymous(d)
                self._fill(r, 200000, 300)
                full = memory(d)
                full_anon = anonymous(d)
                self.assertGreater(full["live_bytes"] - empty["live_bytes"], 200000 * 300)
                r.flushall()
            finally:
                r.close()
            if full["allocator"] != "arena":
                return
            self.assertGreater(full_anon - empty_anon, 40 * MB)
            # within 1 s the daemon is back near its empty size; allow a
            # little more on a busy machine, the figure is in the message
            t0 = time.monotonic()
            back = wait_for(lambda: anonymous(d) <= empty_anon + 5 * MB and memory(d), 3.0)
            self.assertTrue(back, "anonymous RSS %d after FLUSHALL, empty daemon %d"
                            % (anonymous(d), empty_anon))
            self.assertEqual(back["rss_lazyfree"], 0)
            self.assertLess(time.monotonic() - t0, 3.0)

    def test_random_delete_then_compaction(self):
        with Oborod() as d:
            r = self._cache_or_skip(d)
            try:
                if memory(d)["allocator"] != "arena" or memory(d).get("compact_walkers", 0) == 0:
                    self.skipTest("no compaction walker registered by the cache yet")
                n = 600000
                self._fill(r, n, 300)
                rng = random.Random(7)
                pipe = r.pipeline(transaction=False)
                for i in range(n):
                    if rng.random() < 0.9:
                        pipe.delete(b"key:%07d" % i)
                    if i % 5000 == 4999:
                        pipe.execute()
                pipe.execute()
                info = r.info("memory")
            finally:
                r.close()
            self.assertIn("mem_fragmentation_ratio", info)

            # Anonymous memory, not private RSS: library code counts as
            # private or shared depending on how many other processes map
            # it at that moment (other tests run oborods in parallel)
            def compacted():
                m = memory(d)
                return anonymous(d) <= 1.2 * m["live_bytes"] + 8 * MB and m

            m = wait_for(compacted, 30.0, step=0.5)
            self.assertTrue(m, "anonymous RSS %s vs live %s after compaction" % (
                anonymous(d), memory(d)["live_bytes"]))
            self.assertGreater(m["compact_moved_total"], 0)


if __name__ == "__main__":
    harness.main()
