"""Viewer counts across a real 3-node shard: one stream published with
ffmpeg to a follower, watched over HTTP-FLV, RTMP play and LL-HLS on every
node (the other nodes pull it from the origin), and every node showing the
same count within one presence TTL after any join, leave or node death.

How each node is read: followers answer keyspace commands with -MOVED
(docs/raft.md), so on every node the count comes from GET /api/ranking,
which reads that node's own replica (docs/keys.md); on the leader also
PRESENCE.COUNT viewers:live/cam and ZSCORE rank:viewers live/cam through
redis-py. The presence TTL and refresh period are set short with
viewer-presence-ttl-ms and viewer-presence-refresh-ms, which is also what
shows that those directives take effect: with the defaults (15 s) a killed
node's viewers would not be gone within the deadlines below.

The other nodes' pulls from the origin are relays, not viewers; Relays
checks the same for libavformat's RTMP and HTTP-FLV pulls."""
import subprocess
import time
import unittest

import harness
from harness import main, run_oborod
from test_live import play
from test_raft import Cluster, raft_info
from test_rtmp import publish, stop

TTL_MS = 2000
REFRESH_MS = 500
# replication, the leader's sweep timer and this test's polling on a busy
# machine (sanitizer build, other tests running)
MARGIN_S = 2.0
STREAM = "cam"
KEY = "live/" + STREAM


class PullCluster(Cluster):
    """Node 0 is the origin; nodes 1 and 2 pull live/* from it on demand."""

    def args(self, i):
        a = super().args(i)
        if i != 0:
            a += ["--pull", "live/* rtmp://127.0.0.1:%d/live/$name on-demand" % self.presets[0]["rtmp_port"],
                  "--pull-idle-ms", "60000"]
        return a


def ranking(d):
    """(views, viewers) of live/cam as node d's replica has them, from
    GET /api/ranking; (0, 0) before the stream's first join."""
    status, body = d.http_json("/api/ranking?window=3600&n=100")
    if status != 200:
        raise AssertionError("GET /api/ranking: %d %r" % (status, body))
    for e in body["ranking"]:
        if e["stream"] == KEY:
            return e["views"], e["viewers"]
    return 0, 0


def local_viewers(d):
    """Viewers attached to node d itself (0 while the stream is not there)."""
    status, body = d.http_json("/api/streams/" + STREAM)
    return body["viewers"]["total"] if status == 200 else 0


class ShardViewers(unittest.TestCase):
    def setUp(self):
        self.c = PullCluster(3, extra=["--viewer-presence-ttl-ms", str(TTL_MS),
                                       "--viewer-presence-refresh-ms", str(REFRESH_MS),
                                       "--llhls-segment-ms", "1000",
                                       "--llhls-session-idle-ms", "30000"])
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            stop(p)
        self.c.close(check=True)

    def nodes(self):
        return [(i, d) for i, d in enumerate(self.c.nodes) if d is not None]

    def counts(self):
        return {i: ranking(d)[1] for i, d in self.nodes()}

    def wait_all(self, want, since, what):
        """Every live node shows want viewers of live/cam, within one TTL
        (+ margin) of since; returns the seconds it took."""
        deadline = since + TTL_MS / 1000.0 + MARGIN_S
        got = self.counts()
        while any(v != want for v in got.values()):
            if time.time() > deadline:
                self.fail("%s: after %.1f s the nodes show %r viewers, want %d"
                          % (what, time.time() - since, got, want))
            time.sleep(0.05)
            got = self.counts()
        took = time.time() - since
        print("%s: every node shows %d viewers %.0f ms after it" % (what, want, took * 1000))
        return took

    def wait_local(self, d, want, timeout=20):
        """Node d has want viewers of its own attached; returns the time
        the last one attached (as seen by polling)."""
        deadline = time.time() + timeout
        while local_viewers(d) != want:
            self.assertLess(time.time(), deadline, "node never had %d local viewers:\n%s"
                            % (want, d.log_text()[-3000:]))
            time.sleep(0.05)
        return time.time()

    def leader_state(self, l):
        r = self.c.client(l)
        return (r.execute_command("PRESENCE.COUNT", "viewers:" + KEY),
                r.zscore("rank:viewers", KEY))

    def test_counts_on_every_node(self):
        c = self.c
        l = c.leader()
        if l == 0:
            # the origin must be a follower: its viewers' presence is then
            # forwarded to the leader
            c.client(0).execute_command("RAFT.TRANSFER", "2")
            l = c.leader(exclude=(0,))
            deadline = time.time() + 10
            while raft_info(c.client(0)).get("raft_role") != "follower":
                self.assertLess(time.time(), deadline)
                time.sleep(0.05)
        f2 = 3 - l                     # the other follower, 1 or 2
        origin, leader, other = c.nodes[0], c.nodes[l], c.nodes[f2]

        self.procs.append(publish(origin, STREAM, size="320x240", rate=15))
        flv = "/live/%s.flv" % STREAM

        # joins, one node at a time: HTTP-FLV on the origin (a follower),
        # HTTP-FLV and RTMP play on the leader, HTTP-FLV and one LL-HLS
        # session on the other follower (the last two pull the stream)
        v_origin = play(origin.url(flv))
        self.procs.append(v_origin)
        self.wait_all(1, self.wait_local(origin, 1), "join on the origin follower")
        v_leader = play(leader.url(flv))
        self.procs.append(v_leader)
        self.wait_all(2, self.wait_local(leader, 1), "join on the leader (pulled)")
        v_rtmp = play("rtmp://127.0.0.1:%d/live/%s" % (leader.rtmp_port, STREAM))
        self.procs.append(v_rtmp)
        self.wait_all(3, self.wait_local(leader, 2), "RTMP join on the leader")
        v_other = play(other.url(flv))
        self.procs.append(v_other)
        self.wait_all(4, self.wait_local(other, 1), "join on the other follower (pulled)")
        status, _, body = other.http_get("/live/%s/index.m3u8?sid=hls1" % STREAM, timeout=15)
        self.assertEqual(status, 200, body)
        self.wait_all(5, time.time(), "LL-HLS join on the other follower")

        # the pulls are relays, not viewers: 5 joins, 5 viewers everywhere
        for i, d in self.nodes():
            self.assertEqual(ranking(d), (5, 5), "node %d" % i)
        self.assertEqual(self.leader_state(l), (5, 5.0))
        # refreshes (forwarded from the followers) keep every session
        # present well past one TTL
        until = time.time() + 1.5 * TTL_MS / 1000.0
        while time.time() < until:
            self.assertEqual(set(self.counts().values()), {5})
            time.sleep(0.1)
        self.assertEqual(self.leader_state(l), (5, 5.0))

        # leaves: closed connections on the leader and on the origin
        t = time.time()
        stop(v_leader)
        self.wait_all(4, t, "leave on the leader")
        t = time.time()
        stop(v_origin)
        self.wait_all(3, t, "leave on the origin follower")
        self.assertEqual(self.leader_state(l), (3, 3.0))

        # the other follower dies with an HTTP-FLV viewer and an LL-HLS
        # session: nobody says they left; they stop being refreshed and the
        # leader's replicated sweep drops them on every surviving node
        t = time.time()
        c.kill(f2)
        took = self.wait_all(1, t, "SIGKILL of a follower with 2 viewers")
        self.assertGreater(took, 0.0)
        # the sweep, not only a clock-filtered read: the mirror zset (which
        # only replicated writes change) and the members are down to 1
        deadline = t + TTL_MS / 1000.0 + MARGIN_S
        while self.leader_state(l) != (1, 1.0):
            self.assertLess(time.time(), deadline, "leader: %r" % (self.leader_state(l),))
            time.sleep(0.05)
        self.assertEqual(len(c.client(l).execute_command("PRESENCE.MEMBERS", "viewers:" + KEY)), 1)

        # the last viewer leaves: the keys are gone on every surviving node
        t = time.time()
        stop(v_rtmp)
        self.wait_all(0, t, "last leave")
        r = c.client(l)
        deadline = time.time() + TTL_MS / 1000.0 + MARGIN_S
        while r.exists("viewers:" + KEY) or r.zscore("rank:viewers", KEY) is not None:
            self.assertLess(time.time(), deadline, "presence key or mirror left on the leader")
            time.sleep(0.05)
        # the origin follower applied the same entries: same keys as the leader
        commit = int(raft_info(r)["raft_commit_index"])
        while int(raft_info(c.client(0))["raft_applied_index"]) < commit:
            self.assertLess(time.time(), deadline, "origin follower did not catch up")
            time.sleep(0.05)
        self.assertEqual(c.client(0).info("keyspace")["db0"]["keys"], r.dbsize())
        for i, d in self.nodes():
            self.assertEqual(ranking(d), (5, 0), "node %d" % i)


class Relays(unittest.TestCase):
    def test_pulls_are_not_viewers(self):
        """Two oborods pull one stream from an origin, with libavformat over
        RTMP and over HTTP-FLV (the native client is in the shard test
        above): the origin serves both pulls but counts only its own
        viewer; each relay counts its own."""
        with harness.Oborod() as origin:
            rtmp = "live/* rtmp://127.0.0.1:%d/live/$name" % origin.rtmp_port
            http = "live/* http://127.0.0.1:%d/live/$name.flv" % origin.http_port
            with harness.Oborod(args=["--pull", rtmp, "--pull-rtmp-client", "libavformat"]) as b, \
                    harness.Oborod(args=["--pull", http]) as c:
                procs = []
                try:
                    procs.append(publish(origin, STREAM, size="320x240", rate=15))
                    for d in (origin, b, c):
                        procs.append(play(d.url("/live/%s.flv" % STREAM)))
                    count = lambda d: d.redis_cli("PRESENCE.COUNT", "viewers:" + KEY).stdout.strip()
                    deadline = time.time() + 20
                    while (local_viewers(origin), local_viewers(b), local_viewers(c)) != (3, 1, 1):
                        self.assertLess(time.time(), deadline, "pulls or viewers did not start")
                        time.sleep(0.1)
                    status, st = origin.http_json("/api/streams/" + STREAM)
                    self.assertEqual((st["viewers"]["flv"], st["viewers"]["rtmp"]), (2, 1))
                    for d in (origin, b, c):
                        self.assertEqual(count(d), b"1")
                        self.assertEqual(d.redis_cli("WCOUNT.GET", "joins:" + KEY, "WINDOW", "60")
                                         .stdout.strip(), b"1")
                finally:
                    for p in procs:
                        stop(p)


class PresenceDirectives(unittest.TestCase):
    def test_help_and_validation(self):
        code, out, _ = run_oborod(["--help"])
        self.assertEqual(code, 0)
        self.assertRegex(out, r"--viewer-presence-ttl-ms\s+15000")
        self.assertRegex(out, r"--viewer-presence-refresh-ms\s+5000")
        # a refresh period over half the TTL would let viewers blink out
        code, _, err = run_oborod(["--viewer-presence-ttl-ms", "1000", "--viewer-presence-refresh-ms", "600"])
        self.assertEqual(code, 2)
        self.assertIn("viewer-presence-refresh-ms (600) must be at most half of viewer-presence-ttl-ms (1000)", err)
        for flag, value in (("--viewer-presence-ttl-ms", "100"), ("--viewer-presence-refresh-ms", "10")):
            code, _, err = run_oborod([flag, value])
            self.assertEqual(code, 2, err)
            self.assertIn(flag[2:], err)


if __name__ == "__main__":
    main()
