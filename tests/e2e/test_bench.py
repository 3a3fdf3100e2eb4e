"""oboro-bench resp and rss against real servers: redis-server for the
cache commands, oborod for what it answers; the report's shape, the rate
control, error accounting and the memory CSV."""
import csv
import json
import os
import re
import socket
import tempfile
import threading
import unittest

import harness
from harness import Oborod, free_port
from bench_peers import RedisServer, run_bench


class BenchRespTest(unittest.TestCase):
    def test_fixed_rate_set_against_redis(self):
        with RedisServer() as r, tempfile.TemporaryDirectory() as tmp:
            csv_path = os.path.join(tmp, "rss.csv")
            p = run_bench("resp", "--port", r.port, "--rate", "150000/min", "--duration", "2s",
                          "--clients", 20, "--json", "--pid", r.pid, "--rss-out", csv_path)
            self.assertEqual(p.returncode, 0, p.stderr)
            res = json.loads(p.stdout)
            # 150000/min for 2 s is exactly 5000 requests, every one answered
            self.assertEqual(res["mode"], "rate")
            self.assertEqual(res["counts"], {"set": 5000})
            self.assertEqual(res["failed"], 0)
            self.assertEqual(res["success_pct"], 100.0)
            self.assertAlmostEqual(res["requested_per_s"], 2500.0)
            # achieved rate = requests over the time from the first intended
            # send to the last reply; the schedule paces, it does not burst
            self.assertLess(abs(res["ops_per_min"] - 150000) / 150000, 0.01, res)
            lat = res["latency"]
            self.assertEqual(lat["count"], 5000)
            self.assertTrue(0 < lat["p50_ns"] <= lat["p90_ns"] <= lat["p99_ns"] <= lat["p99_9_ns"]
                            <= lat["p99_99_ns"] <= lat["max_ns"], lat)
            self.assertEqual(sum(b["count"] for b in lat["histogram"]), 5000)
            self.assertEqual(len(lat["histogram"]), 11)
            # the keys really are in redis
            dbsize = r_cli(r.port, "DBSIZE")
            self.assertGreater(int(dbsize), 4000)
            # memory CSV: a row per second, private = clean + dirty + hugetlb
            with open(csv_path) as f:
                rows = list(csv.DictReader(f))
            self.assertGreaterEqual(len(rows), 3)
            for row in rows:
                self.assertEqual(int(row["private_kb"]), int(row["private_clean_kb"])
                                 + int(row["private_dirty_kb"]) + int(row["private_hugetlb_kb"]))
                self.assertGreater(int(row["private_kb"]), 0)
            self.assertEqual(res["memory"]["samples"], len(rows))

    def test_text_report_shape(self):
        with RedisServer() as r:
            p = run_bench("resp", "--port", r.port, "--rate", "1000/s", "--duration", "1s",
                          "--clients", 4)
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = p.stdout.splitlines()
            self.assertRegex(lines[0], r"^Count: set=1000 failed=0 success%=100\.00$")
            self.assertRegex(lines[1], r"^Elapsed: \d+\.\d{3}s$")
            self.assertRegex(lines[2], r"^Set per min: \d+$")
            header = [l for l in lines if "50%ILE" in l]
            self.assertEqual(len(header), 1)
            self.assertEqual([c.strip() for c in header[0].split("|")],
                             ["AVG", "50%ILE", "90%ILE", "95%ILE", "99%ILE", "99.5%ILE", "MAX", "STDDEV"])
            row = lines[lines.index(header[0]) + 1]
            self.assertEqual(len(row.split("|")), 8)
            for cell in row.split("|"):
                self.assertRegex(cell.strip(), r"^\d+(\.\d+)?(ns|us|ms|s)$")
            self.assertTrue(any(re.match(r"^99\.9%ILE: \S+  99\.99%ILE: \S+$", l) for l in lines))
            bins = [l for l in lines if re.match(r"^\s*\d+[nmu]?s ~", l)]
            self.assertEqual(len(bins), 11)
            self.assertTrue(bins[0].lstrip().startswith("1ns ~"))
            self.assertTrue(bins[-1].lstrip().startswith("10s ~"))
            self.assertEqual(sum(int(b.split("|")[2].split()[0]) for b in bins), 1000)

    def test_max_mode_mix_pipeline_threads(self):
        with RedisServer() as r:
            p = run_bench("resp", "--port", r.port, "--duration", "1s", "--clients", 8,
                          "--threads", 2, "--pipeline", 8, "--mix", "set=1,get=1,incr=1,zincrby=1",
                          "--command", "HINCRBY h:__key__ f 1", "--keyspace", 100, "--json")
            self.assertEqual(p.returncode, 0, p.stderr)
            res = json.loads(p.stdout)
            self.assertEqual(res["mode"], "max")
            self.assertEqual(set(res["counts"]), {"set", "get", "incr", "zincrby", "hincrby"})
            self.assertTrue(all(v > 0 for v in res["counts"].values()), res["counts"])
            self.assertEqual(res["failed"], 0)
            # ZINCRBY member:N over a keyspace of 100
            self.assertLessEqual(int(r_cli(r.port, "ZCARD", "rank:bench")), 100)
            self.assertGreater(int(r_cli(r.port, "ZCARD", "rank:bench")), 50)
            self.assertGreater(int(r_cli(r.port, "HGET", "h:7", "f") or 0), 0)

    def test_error_replies_count_as_failed(self):
        with RedisServer() as r:
            p = run_bench("resp", "--port", r.port, "--rate", "500/s", "--duration", "1s",
                          "--clients", 2, "--command", "NOSUCHCMD __key__")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"(?m)^Count: nosuchcmd=500 failed=500 success%=0\.00$")

    def test_malformed_and_unsolicited_replies(self):
        # a server that answers garbage, or talks before it is asked: the
        # connection is dropped with one line, its requests count as failed
        for reply, why in ((b"?garbage\r\n", "malformed"), (b"+OK\r\n" * 50, "nobody asked")):
            srv = socket.socket()
            srv.bind(("127.0.0.1", 0))
            srv.listen(8)
            srv.settimeout(0.1)
            port = srv.getsockname()[1]
            done = threading.Event()

            def serve():
                conns = []
                while not done.is_set():
                    try:
                        c, _ = srv.accept()
                    except socket.timeout:
                        continue
                    conns.append(c)
                    c.settimeout(2)
                    try:
                        c.recv(4096)
                        c.sendall(reply)
                    except OSError:
                        pass
                for c in conns:
                    c.close()
            t = threading.Thread(target=serve, daemon=True)
            t.start()
            try:
                p = run_bench("resp", "--port", port, "--rate", "100/s", "--duration", "1s",
                              "--clients", 2, "--timeout", "1s", "--json")
                self.assertEqual(p.returncode, 0, p.stderr)
                res = json.loads(p.stdout)
                self.assertEqual(res["failed"], 100 - res["ok"], res)
                self.assertGreater(res["failed"], 0)
                self.assertEqual(p.stderr.count("oboro-bench: connection"), 1, p.stderr)
                self.assertIn(why, p.stderr)
            finally:
                done.set()
                t.join(5)
                srv.close()

    def test_server_gone(self):
        # nothing listens: exit 1 with a reason, no report
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = run_bench("resp", "--port", port, "--duration", "1s", "--clients", 2)
        self.assertEqual(p.returncode, 1)
        self.assertIn("127.0.0.1:%d" % port, p.stderr)
        self.assertEqual(p.stdout, "")

    def test_usage_errors(self):
        for args in (["--rate", "fast"], ["--duration", "0s"], ["--clients", "0"],
                     ["--mix", "set=1,frob=2"], ["--port", "70000"], ["extra"]):
            p = run_bench("resp", *args)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("oboro-bench", p.stderr)
        p = run_bench("resp", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--rate", p.stdout)
        p = run_bench("nope")
        self.assertEqual(p.returncode, 2)

    def test_against_oborod(self):
        with Oborod() as d:
            p = run_bench("resp", "--port", d.port, "--rate", "2000/s", "--duration", "1s",
                          "--clients", 4, "--command", "PING", "--json")
            self.assertEqual(p.returncode, 0, p.stderr)
            res = json.loads(p.stdout)
            self.assertEqual(res["counts"], {"ping": 2000})
            self.assertEqual(res["failed"], 0)
            # SET once the cache answers it (the RESP cache lands separately)
            if answers_set(d.port):
                p = run_bench("resp", "--port", d.port, "--rate", "2000/s", "--duration", "1s",
                              "--clients", 4, "--json", "--pid", d.proc.pid,
                              "--rss-out", os.path.join(d.tmp, "rss.csv"))
                self.assertEqual(p.returncode, 0, p.stderr)
                res = json.loads(p.stdout)
                self.assertEqual(res["counts"], {"set": 2000})
                self.assertEqual(res["failed"], 0)


class BenchRssTest(unittest.TestCase):
    def test_rss_until_exit(self):
        with RedisServer() as r, tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "r.csv")
            p = run_bench("rss", "--pid", r.pid, "--out", out, "--duration", "1500ms")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"private first=\d+kB last=\d+kB peak=\d+kB")
            with open(out) as f:
                rows = list(csv.DictReader(f))
            self.assertGreaterEqual(len(rows), 2)
            self.assertEqual(float(rows[0]["elapsed_s"]), 0.0)
        p = run_bench("rss", "--pid", 0x3ffffff0, "--out", "/dev/null")
        self.assertEqual(p.returncode, 1)


def answers_set(port):
    """Whether the server at port answers SET with +OK within 2 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nprobe\r\n$1\r\n1\r\n")
        try:
            return s.recv(16).startswith(b"+OK")
        except socket.timeout:
            return False


def r_cli(port, *args):
    import subprocess
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                          text=True, timeout=10).stdout.strip()


if __name__ == "__main__":
    harness.main()
