"""Raft replication of the cache, end to end: real oborod processes on
loopback, redis-py as the client.

- a single node (the default) keeps every acknowledged write across kill -9;
- a 3-node shard replicates, followers redirect with -MOVED, the leader is
  killed under write load and a new one takes over without losing any
  acknowledged SET or INCR, the killed node restarts and catches up, and a
  frozen follower (SIGSTOP, SIGCONT) rejoins.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import redis

from harness import Oborod, free_port, main, run_oborod


def raft_info(r):
    """RAFT.INFO as a dict (values as str)."""
    text = r.execute_command("RAFT.INFO")
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


class Cluster:
    """n oborod processes forming one Raft group; node i has id i+1."""

    def __init__(self, n=3, extra=()):
        self.tmp = tempfile.mkdtemp(prefix="oboro-raft-")
        self.presets = []
        for i in range(n):
            self.presets.append({"port": free_port(), "rtmp_port": free_port(),
                                 "http_port": free_port(), "raft_port": free_port(),
                                 "dir": os.path.join(self.tmp, "n%d" % (i + 1))})
        self.peers = ",".join("%d=127.0.0.1:%d" % (i + 1, p["raft_port"])
                              for i, p in enumerate(self.presets))
        self.extra = list(extra)
        self.nodes = [None] * n
        self.old = []
        try:
            for i in range(n):
                self.start(i, wait=False)
            for d in self.nodes:
                d.wait_ready()
        except BaseException:
            self.close()
            raise

    def args(self, i):
        return ["--node-id", str(i + 1), "--raft-peers", self.peers,
                "--raft-election-timeout", "300", "--raft-heartbeat-timeout", "30"] + self.extra

    def start(self, i, wait=True):
        self.nodes[i] = Oborod(args=self.args(i), preset=self.presets[i], wait=wait)
        return self.nodes[i]

    def client(self, i, timeout=5):
        return redis.Redis(host="127.0.0.1", port=self.presets[i]["port"], socket_timeout=timeout)

    def kill(self, i):
        """kill -9 node i (its log is still checked at close)."""
        d = self.nodes[i]
        d.kill()
        self.old.append(d)
        self.nodes[i] = None

    def live(self):
        return [i for i, d in enumerate(self.nodes) if d is not None]

    def leader(self, timeout=15.0, exclude=()):
        """Index of the node that says it leads (and has published its
        address), waiting up to timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i in self.live():
                if i in exclude:
                    continue
                try:
                    info = raft_info(self.client(i))
                except (redis.RedisError, OSError):
                    continue
                if info.get("raft_role") == "leader" and info.get("raft_leader"):
                    return i
            time.sleep(0.05)
        raise AssertionError("no leader after %.0fs" % timeout)

    def index_of_port(self, port):
        for i, p in enumerate(self.presets):
            if p["port"] == port:
                return i
        raise AssertionError("no node with RESP port %d" % port)

    def close(self, check=True):
        err = None
        for d in self.old + [d for d in self.nodes if d is not None]:
            try:
                d.close(check=check)
            except AssertionError as e:
                err = err or e
        self.nodes = [None] * len(self.nodes)
        self.old = []
        shutil.rmtree(self.tmp, ignore_errors=True)
        if err is not None:
            raise err


class Writer(threading.Thread):
    """SET k<i> v<i> and INCR counter against whoever leads, following
    -MOVED redirects; records what was acknowledged."""

    def __init__(self, cluster, prefix):
        super().__init__(daemon=True)
        self.c = cluster
        self.prefix = prefix
        self.acked = {}
        self.incr_acked = 0
        self.incr_tried = 0
        self.stop = threading.Event()
        self.target = None
        self.errors = 0
        self.acks_at = []

    def connect(self):
        try:
            self.target = self.c.leader(timeout=1.0)
        except AssertionError:
            self.target = None

    def run(self):
        i = 0
        r = None
        while not self.stop.is_set():
            if self.target is None or r is None:
                self.connect()
                if self.target is None:
                    continue
                r = self.c.client(self.target, timeout=2)
            i += 1
            key = "%s%d" % (self.prefix, i)
            try:
                r.set(key, "v%d" % i)
                self.acked[key] = "v%d" % i
                self.acks_at.append(time.time())
                self.incr_tried += 1
                r.incr(self.prefix + "counter")
                self.incr_acked += 1
            except redis.ResponseError as e:
                self.errors += 1
                msg = str(e)
                if msg.startswith("MOVED "):
                    port = int(msg.split()[-1].rsplit(":", 1)[1])
                    self.target = self.c.index_of_port(port)
                    r = self.c.client(self.target, timeout=2)
                else:
                    time.sleep(0.02)
                    r = None
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self.errors += 1
                r = None
                time.sleep(0.02)


def check_acked(test, r, w):
    """Every acknowledged SET is there; the counter counts every
    acknowledged INCR (and no more than were tried)."""
    keys = list(w.acked)
    for n in range(0, len(keys), 500):
        chunk = keys[n:n + 500]
        got = r.mget(chunk)
        for k, v in zip(chunk, got):
            test.assertEqual(v, w.acked[k].encode(), "acknowledged %s lost" % k)
    counter = int(r.get(w.prefix + "counter") or 0)
    test.assertGreaterEqual(counter, w.incr_acked)
    test.assertLessEqual(counter, w.incr_tried)


class SingleNodeTest(unittest.TestCase):
    def test_default_single_node_survives_kill9(self):
        tmp = tempfile.mkdtemp(prefix="oboro-raft1-")
        preset = {"port": free_port(), "rtmp_port": free_port(), "http_port": free_port(),
                  "raft_port": free_port(), "dir": os.path.join(tmp, "data")}
        try:
            with Oborod(preset=preset) as d:
                r = redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=5)
                info = raft_info(r)
                self.assertEqual(info["raft_role"], "leader")
                self.assertEqual(info["raft_num_nodes"], "1")
                p = r.pipeline(transaction=False)
                for i in range(2000):
                    p.set("key:%d" % i, "value:%d" % i)
                    p.incr("hits")
                p.execute()
                self.assertEqual(r.get("hits"), b"2000")
                batches = int(raft_info(r)["raft_batches"])
                # pipelined commands of one loop iteration share a log entry
                self.assertLess(batches, 2000)
                self.assertEqual(r.info("raft")["raft_role"], "leader")
                # reads: linearizable by default, leader-only at run time
                self.assertEqual(r.config_get("raft-read-mode"), {"raft-read-mode": "linearizable"})
                r.config_set("raft-read-mode", "leader")
                self.assertEqual(r.get("hits"), b"2000")
                self.assertEqual(raft_info(r)["raft_read_mode"], "leader")
                r.config_set("raft-read-mode", "linearizable")
                d.kill()
            with Oborod(preset=preset) as d:
                r = redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=5)
                deadline = time.time() + 10
                while raft_info(r)["raft_role"] != "leader":
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.05)
                self.assertEqual(r.get("hits"), b"2000")
                vals = r.mget(["key:%d" % i for i in range(2000)])
                self.assertEqual(vals, [b"value:%d" % i for i in range(2000)])
                r.set("last", "1")
                d.kill()
            # a crash that leaves garbage after the last entries of the open
            # segments (a torn write): one log line, recovered, data intact
            for name in os.listdir(preset["dir"]):
                if name.startswith("open-"):
                    with open(os.path.join(preset["dir"], name), "ab") as f:
                        f.write(os.urandom(4096))
            with Oborod(preset=preset) as d:
                r = redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=5)
                self.assertEqual(r.get("last"), b"1")
                self.assertEqual(r.get("hits"), b"2000")
                self.assertIn("unreadable log segments", d.log_text())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_concurrent_clients_read_their_writes(self):
        # writes of many loop iterations share a log entry while an append
        # is on its way to the disk: every client still reads its own
        # writes on its connection, and its replies come back in order
        with Oborod() as d:
            errors = []

            def client(n):
                try:
                    r = redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=10)
                    for i in range(150):
                        p = r.pipeline(transaction=False)
                        p.set("c%d:k%d" % (n, i % 10), "v%d" % i)
                        p.incr("c%d:n" % n)
                        p.get("c%d:k%d" % (n, i % 10))
                        p.get("c%d:n" % n)
                        out = p.execute()
                        if out != [True, i + 1, b"v%d" % i, b"%d" % (i + 1)]:
                            errors.append((n, i, out))
                            return
                except Exception as e:  # reported below, not swallowed
                    errors.append((n, repr(e)))

            threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            r = redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=5)
            for n in range(12):
                self.assertEqual(r.get("c%d:n" % n), b"150")


    def test_single_voter_reads_append_nothing(self):
        # the only voter of a shard cannot be deposed without a new
        # configuration entry: its reads need no barrier entry in the log
        # (no disk write per read), and they still see every write
        with Oborod() as d:
            r = redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=5)
            r.set("k", "v1")
            before = int(raft_info(r)["raft_last_log_index"])
            for i in range(50):
                self.assertEqual(r.get("k"), b"v1")
                self.assertEqual(r.exists("k"), 1)
            self.assertEqual(int(raft_info(r)["raft_last_log_index"]), before)
            r.set("k", "v2")
            self.assertEqual(r.get("k"), b"v2")
            self.assertEqual(int(raft_info(r)["raft_last_log_index"]), before + 1)


class StartupErrorsTest(unittest.TestCase):
    def test_dir_and_raft_port_in_use(self):
        with Oborod() as d:
            base = ["--port", str(free_port()), "--rtmp-port", str(free_port()),
                    "--http-port", str(free_port())]
            # a second daemon on the same data directory would corrupt the log
            code, out, err = run_oborod(base + ["--raft-port", str(free_port()), "--dir", d.dir])
            self.assertEqual(code, 1)
            self.assertIn("data directory is in use by another oborod", err)
            # the Raft port is taken
            code, out, err = run_oborod(base + ["--raft-port", str(d.raft_port),
                                                "--dir", os.path.join(d.tmp, "other")])
            self.assertEqual(code, 1)
            self.assertIn("raft-port is already in use", err)
            self.assertEqual(redis.Redis(port=d.port).set("still", "up"), True)


class ThreeNodeTest(unittest.TestCase):
    def setUp(self):
        # small snapshot threshold: forked snapshots and restores happen
        self.c = Cluster(3, extra=["--raft-snapshot-threshold", "64",
                                   "--raft-snapshot-trailing", "16"])

    def tearDown(self):
        self.c.close(check=True)

    def test_replicate_redirect_failover_restart(self):
        c = self.c
        l = c.leader()
        r = c.client(l)
        r.set("greeting", "hello")
        info = raft_info(r)
        self.assertEqual(info["raft_num_nodes"], "3")
        # with three voters a linearizable read goes through a barrier
        # entry: the leader checks with a quorum that it still leads
        idx = int(info["raft_last_log_index"])
        self.assertEqual(r.get("greeting"), b"hello")
        self.assertGreater(int(raft_info(r)["raft_last_log_index"]), idx)
        self.assertIn("match_index=", info["raft_node0"])
        # followers redirect to the leader's RESP port, RedisRaft's way
        f = (l + 1) % 3
        deadline = time.time() + 5
        msg = ""
        while not msg.startswith("MOVED") and time.time() < deadline:
            try:
                c.client(f).get("greeting")
                self.fail("a follower answered a read")
            except redis.ResponseError as e:
                msg = str(e)
            time.sleep(0.05)
        self.assertEqual(msg, "MOVED 0 127.0.0.1:%d" % c.presets[l]["port"])
        # ... every write included
        with self.assertRaises(redis.ResponseError) as cm:
            c.client(f).set("x", "y")
        self.assertTrue(str(cm.exception).startswith("MOVED"))
        # redis-cli -c follows the redirect
        out = subprocess.run(["redis-cli", "-c", "-p", str(c.presets[f]["port"]),
                              "SET", "via-follower", "1"], capture_output=True, timeout=10)
        self.assertEqual(out.stdout.strip(), b"OK", out)
        self.assertEqual(r.get("via-follower"), b"1")

        # kill -9 the leader under write load
        w = Writer(c, "fo:")
        w.start()
        time.sleep(1.0)
        before = len(w.acked)
        self.assertGreater(before, 0)
        killed_at = time.time()
        c.kill(l)
        nl = c.leader(exclude=(l,))
        self.assertNotEqual(nl, l)
        deadline = time.time() + 15
        while not [t for t in w.acks_at if t > killed_at]:
            self.assertLess(time.time(), deadline, "no write acknowledged after the leader died")
            time.sleep(0.02)
        first = min(t for t in w.acks_at if t > killed_at)
        print("failover: first acknowledged write %.0f ms after kill -9 of the leader"
              % ((first - killed_at) * 1000))
        time.sleep(0.5)

        # the killed node restarts with its data and catches up
        c.start(l)
        time.sleep(0.5)
        w.stop.set()
        w.join(10)
        nl = c.leader()
        lr = c.client(nl)
        check_acked(self, lr, w)
        self.assertEqual(lr.get("greeting"), b"hello")
        commit = int(raft_info(lr)["raft_commit_index"])
        deadline = time.time() + 10
        while int(raft_info(c.client(l))["raft_applied_index"]) < commit:
            self.assertLess(time.time(), deadline, "restarted node did not catch up")
            time.sleep(0.05)
        info = raft_info(lr)
        self.assertGreater(int(info["raft_snapshots_taken"]), 0)
        # the restarted node came back from a snapshot (its own or the leader's)
        self.assertGreater(int(raft_info(c.client(l))["raft_snapshots_restored"]), 0)

    def test_quorum_lost_then_back(self):
        c = self.c
        l = c.leader()
        c.client(l).set("q", "1")
        survivor = (l + 1) % 3
        other = (l + 2) % 3
        c.kill(l)
        c.kill(other)
        # alone, the survivor has no leader: it says so and takes nothing
        r = c.client(survivor)
        deadline = time.time() + 10
        msg = ""
        while not msg.startswith("CLUSTERDOWN"):
            self.assertLess(time.time(), deadline, "last error: " + msg)
            try:
                r.set("q", "2")
                self.fail("a node without quorum acknowledged a write")
            except redis.ResponseError as e:
                msg = str(e)
            time.sleep(0.05)
        self.assertEqual(msg, "CLUSTERDOWN No raft leader")
        # a second node is back: a leader again, nothing lost
        c.start(other)
        nl = c.leader(timeout=15)
        lr = c.client(nl)
        self.assertEqual(lr.get("q"), b"1")
        lr.set("q", "3")
        self.assertEqual(lr.get("q"), b"3")

    def test_frozen_follower_rejoins(self):
        c = self.c
        l = c.leader()
        f = (l + 1) % 3
        pid = c.nodes[f].proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            r = c.client(l)
            for i in range(200):
                r.set("frozen:%d" % i, i)
            time.sleep(1.0)
            for i in range(200, 300):
                r.set("frozen:%d" % i, i)
        finally:
            os.kill(pid, signal.SIGCONT)
        commit = int(raft_info(c.client(c.leader()))["raft_commit_index"])
        deadline = time.time() + 10
        while True:
            try:
                applied = int(raft_info(c.client(f))["raft_applied_index"])
            except (redis.RedisError, OSError):
                applied = 0
            if applied >= commit:
                break
            self.assertLess(time.time(), deadline, "frozen follower did not catch up")
            time.sleep(0.05)
        nl = c.leader()
        self.assertEqual(c.client(nl).get("frozen:299"), b"299")


class MembershipTest(unittest.TestCase):
    def test_add_remove_transfer(self):
        c = Cluster(3)
        try:
            # a fourth node, not in raft-peers: starts empty and waits
            p4 = {"port": free_port(), "rtmp_port": free_port(), "http_port": free_port(),
                  "raft_port": free_port(), "dir": os.path.join(c.tmp, "n4")}
            c.presets.append(p4)
            c.nodes.append(None)
            c.start(3)
            self.assertEqual(raft_info(c.client(3))["raft_num_nodes"], "0")
            l = c.leader()
            r = c.client(l)
            r.set("before-add", "1")
            self.assertTrue(r.execute_command("RAFT.NODE", "ADD", "4",
                                              "127.0.0.1:%d" % p4["raft_port"]))
            deadline = time.time() + 15
            while "role=voter" not in raft_info(r).get("raft_node3", ""):
                self.assertLess(time.time(), deadline, "node 4 never became a voter")
                time.sleep(0.05)
            with self.assertRaises(redis.ResponseError):
                r.execute_command("RAFT.NODE", "ADD", "4", "127.0.0.1:1")
            deadline = time.time() + 10
            while (int(raft_info(c.client(3))["raft_applied_index"])
                   < int(raft_info(r)["raft_commit_index"])):
                self.assertLess(time.time(), deadline, "node 4 did not catch up")
                time.sleep(0.05)
            # hand leadership to node 4: it has every write
            self.assertTrue(r.execute_command("RAFT.TRANSFER", "4"))
            deadline = time.time() + 10
            while raft_info(c.client(3))["raft_role"] != "leader":
                self.assertLess(time.time(), deadline, "node 4 did not take over")
                time.sleep(0.05)
            r4 = c.client(3)
            self.assertEqual(r4.get("before-add"), b"1")
            # remove a follower; the shard goes on with three voters
            victim = (l + 1) % 3
            self.assertTrue(r4.execute_command("RAFT.NODE", "REMOVE", str(victim + 1)))
            deadline = time.time() + 10
            while raft_info(r4)["raft_num_nodes"] != "3":
                self.assertLess(time.time(), deadline, "node was not removed")
                time.sleep(0.05)
            r4.set("after-remove", "1")
            self.assertEqual(r4.get("after-remove"), b"1")
        finally:
            c.close(check=True)


if __name__ == "__main__":
    main()
