"""The RESP cache with real clients: redis-cli (including inline/raw mode),
redis-py, redis-benchmark; and the server's limits: maxclients, idle
timeout, requirepass, output-buffer limit, active expiry, CONFIG, INFO,
CLIENT."""
import socket
import subprocess
import time
import unittest

import redis

import harness
from harness import Oborod


def client(d, **kw):
    return redis.Redis(host="127.0.0.1", port=d.port, socket_timeout=10, **kw)


def raw(port, data, timeout=5):
    """Send bytes, read until the server closes or goes quiet."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    s.settimeout(0.5)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


class CacheTest(unittest.TestCase):
    def test_redis_cli(self):
        with Oborod() as d:
            self.assertEqual(d.redis_cli("SET", "k", "v").stdout, b"OK\n")
            self.assertEqual(d.redis_cli("GET", "k").stdout, b"v\n")
            self.assertEqual(d.redis_cli("INCRBY", "n", "41").stdout, b"41\n")
            self.assertEqual(d.redis_cli("ZADD", "r", "3", "c", "1", "a", "2", "b").stdout, b"3\n")
            self.assertEqual(d.redis_cli("ZREVRANGE", "r", "0", "-1").stdout, b"c\nb\na\n")
            # commands from stdin, one per line, as redis-cli sends them
            r = d.redis_cli(input=b"SET x 1\nINCR x\nGET x\n")
            self.assertEqual(r.stdout, b"OK\n2\n2\n")
            r = d.redis_cli("--pipe", input=b"*3\r\n$3\r\nSET\r\n$1\r\np\r\n$1\r\n1\r\n" * 100)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"errors: 0, replies: 100", r.stdout)
            r = d.redis_cli("NOSUCH", "a")
            self.assertIn(b"ERR unknown command 'NOSUCH', with args beginning with: 'a'", r.stdout)
            r = d.redis_cli("--scan", "--pattern", "*")
            self.assertEqual(sorted(r.stdout.split()), [b"k", b"n", b"p", b"r", b"x"])

    def test_command_docs_shape(self):
        """COMMAND DOCS as redis-cli reads it for its hints: RESP2 a flat
        array of name, [summary, s, since, v, group, g]; RESP3 a map of maps;
        unknown names are left out."""
        with Oborod() as d:
            out = raw(d.port, b"COMMAND DOCS get nosuch\r\n")
            self.assertTrue(out.startswith(b"*2\r\n$3\r\nget\r\n*6\r\n$7\r\nsummary\r\n"), out)
            self.assertIn(b"$5\r\nsince\r\n", out)
            self.assertIn(b"$5\r\ngroup\r\n$6\r\nstring\r\n", out)
            out = raw(d.port, b"HELLO 3\r\nCOMMAND DOCS get\r\n")
            docs = out[out.index(b"%1\r\n$3\r\nget\r\n"):]
            self.assertTrue(docs.startswith(b"%1\r\n$3\r\nget\r\n%3\r\n$7\r\nsummary\r\n"), out)
            # without names: every public command, none of the internal ones
            out = raw(d.port, b"COMMAND DOCS\r\n")
            n = int(out[1:out.index(b"\r\n")])
            count = int(raw(d.port, b"COMMAND COUNT\r\n")[1:-2])
            self.assertEqual(n, 2 * count)
            self.assertNotIn(b"__expdel", out)

    def test_inline_and_pipelining(self):
        with Oborod() as d:
            out = raw(d.port, b"SET a 1\r\nINCR a\r\nGET a\r\nECHO \"x y\\n\"\r\nQUIT\r\nPING\r\n")
            self.assertEqual(out, b"+OK\r\n:2\r\n$1\r\n2\r\n$4\r\nx y\n\r\n+OK\r\n")
            # many pipelined commands in one write, writes and reads mixed
            req = b"".join(b"*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n*2\r\n$3\r\nGET\r\n$1\r\nc\r\n" for _ in range(500))
            out = raw(d.port, req)
            want = b"".join(b":%d\r\n$%d\r\n%d\r\n" % (i, len(str(i)), i) for i in range(1, 501))
            self.assertEqual(out, want)

    def test_redis_py(self):
        with Oborod() as d:
            c = client(d)
            self.assertTrue(c.ping())
            c.hset("stream:1", mapping={"title": "t", "viewers": "0"})
            self.assertEqual(c.hincrby("stream:1", "viewers", 5), 5)
            self.assertEqual(c.hgetall("stream:1"), {b"title": b"t", b"viewers": b"5"})
            c.zadd("rank", {"a": 10, "b": 20, "c": 15})
            self.assertEqual(c.zrevrange("rank", 0, 1, withscores=True), [(b"b", 20.0), (b"c", 15.0)])
            self.assertEqual(c.zincrby("rank", 2.5, "a"), 12.5)
            self.assertEqual(c.pfadd("uv", *["u%d" % i for i in range(100)]), 1)
            self.assertTrue(95 <= c.pfcount("uv") <= 105)
            self.assertTrue(c.set("t", "v", ex=100))
            self.assertTrue(98 <= c.ttl("t") <= 100)
            p = c.pipeline(transaction=False)
            for i in range(1000):
                p.set("k%d" % i, i)
            p.get("k999")
            res = p.execute()
            self.assertEqual(res[-1], b"999")
            self.assertEqual(c.dbsize(), 1004)
            self.assertEqual(len(list(c.scan_iter(match="k1*", count=100))), 111)
            with self.assertRaises(redis.ResponseError) as cm:
                c.zadd("stream:1", {"x": 1})
            self.assertIn("WRONGTYPE", str(cm.exception))
            self.assertEqual(c.client_setname("viewer"), True)
            self.assertEqual(c.client_getname(), "viewer")
            self.assertIn("viewer", str(c.client_list()))
            info = c.info()
            self.assertEqual(info["redis_version"], "7.0.15")
            self.assertGreater(info["used_memory"], 0)
            self.assertIn("mem_tag_cache.keys", info)
            self.assertEqual(info["db0"]["keys"], 1004)
            self.assertEqual(c.flushall(), True)
            self.assertEqual(c.dbsize(), 0)

    def test_requirepass_and_config(self):
        with Oborod(args=["--requirepass", "s3cret"]) as d:
            r = d.redis_cli("GET", "k")
            self.assertIn(b"NOAUTH Authentication required.", r.stdout)
            r = d.redis_cli("-a", "wrong", "--no-auth-warning", "PING")
            self.assertIn(b"WRONGPASS", r.stdout + r.stderr)
            c = client(d, password="s3cret")
            self.assertTrue(c.ping())
            self.assertEqual(c.config_get("maxclients"), {"maxclients": "10000"})
            self.assertTrue(c.config_set("maxclients", "50"))
            self.assertEqual(c.config_get("maxcl*"), {"maxclients": "50"})
            with self.assertRaises(redis.ResponseError) as cm:
                c.config_set("port", "1")
            self.assertIn("Unknown option or number of arguments for CONFIG SET - 'port'", str(cm.exception))
            with self.assertRaises(redis.ResponseError) as cm:
                c.config_set("maxclients", "abc")
            self.assertIn("CONFIG SET failed (possibly related to argument 'maxclients')", str(cm.exception))
            self.assertTrue(c.config_set("requirepass", ""))
            self.assertEqual(d.redis_cli("PING").stdout, b"PONG\n")

    def test_maxclients(self):
        with Oborod(args=["--maxclients", "2"]) as d:
            a = socket.create_connection(("127.0.0.1", d.port))
            b = socket.create_connection(("127.0.0.1", d.port))
            a.sendall(b"PING\r\n")
            self.assertEqual(a.recv(100), b"+PONG\r\n")
            b.sendall(b"PING\r\n")
            self.assertEqual(b.recv(100), b"+PONG\r\n")
            self.assertEqual(raw(d.port, b""), b"-ERR max number of clients reached\r\n")
            a.close()
            b.close()
            time.sleep(0.2)
            self.assertEqual(raw(d.port, b"PING\r\n"), b"+PONG\r\n")

    def test_idle_timeout(self):
        with Oborod(args=["--timeout", "1"]) as d:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.sendall(b"PING\r\n")
            self.assertEqual(s.recv(100), b"+PONG\r\n")
            t0 = time.time()
            self.assertEqual(s.recv(100), b"")  # closed by the server
            self.assertLess(time.time() - t0, 4)
            s.close()

    def test_output_buffer_limit(self):
        """A client that never reads is disconnected; others are unaffected."""
        with Oborod(args=["--client-output-buffer-limit", "1mb"]) as d:
            c = client(d)
            c.set("big", "x" * 100000)
            s = socket.create_connection(("127.0.0.1", d.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            req = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 2000
            try:
                s.sendall(req)
            except OSError:
                pass  # the server may already have closed us
            deadline = time.time() + 10
            closed = False
            while time.time() < deadline and not closed:
                closed = "client-output-buffer-limit" in d.log_text()
                time.sleep(0.05)
            self.assertTrue(closed, d.log_text())
            s.close()
            self.assertEqual(c.get("big"), b"x" * 100000)
            self.assertLess(c.info("memory")["mem_tag_resp.conn"]["bytes"], 8 << 20)

    def test_protocol_error_closes_one_session(self):
        with Oborod() as d:
            c = client(d)
            c.set("k", "v")
            out = raw(d.port, b"*1\r\n$x\r\nPING\r\n")
            self.assertEqual(out, b"-ERR Protocol error: invalid bulk length\r\n")
            self.assertEqual(c.get("k"), b"v")
            self.assertIn('msg="protocol error"', d.log_text())

    def test_active_expiry(self):
        """Expired keys are reclaimed without being touched."""
        with Oborod() as d:
            c = client(d)
            p = c.pipeline(transaction=False)
            for i in range(2000):
                p.set("e%d" % i, "v", px=50)
            p.set("keep", "v")
            p.execute()
            deadline = time.time() + 10
            while time.time() < deadline and c.dbsize() > 1:
                time.sleep(0.1)
            self.assertEqual(c.dbsize(), 1)
            self.assertGreaterEqual(c.info("stats")["expired_keys"], 2000)

    def test_memory_follows_keys(self):
        """Keys show up under cache.keys in INFO memory and leave with them."""
        with Oborod() as d:
            c = client(d)
            base = c.info("memory")["mem_tag_cache.keys"]["bytes"]
            p = c.pipeline(transaction=False)
            for i in range(20000):
                p.set("key:%012d" % i, "v" * 32)
            p.execute()
            full = c.info("memory")["mem_tag_cache.keys"]["bytes"]
            self.assertGreater(full - base, 20000 * 16 + 20000 * 32)
            self.assertGreater(c.memory_usage("key:000000000001"), 48)
            c.flushall()
            self.assertLess(c.info("memory")["mem_tag_cache.keys"]["bytes"], base + 4096)

    def test_client_commands(self):
        with Oborod() as d:
            a = client(d)
            b = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            b.sendall(b"CLIENT SETNAME victim\r\nCLIENT ID\r\n")
            reply = b""
            while reply.count(b"\r\n") < 2:
                reply += b.recv(100)
            self.assertTrue(reply.startswith(b"+OK\r\n:"), reply)
            bid = int(reply.split(b"\r\n")[1][1:])
            self.assertNotEqual(a.client_id(), bid)
            self.assertIn("name=victim", a.execute_command("CLIENT", "LIST").decode())
            self.assertEqual(a.execute_command("CLIENT", "KILL", "ID", bid), 1)
            self.assertEqual(b.recv(100), b"")
            b.close()
            self.assertEqual(a.execute_command("CLIENT", "KILL", "ID", bid), 0)
            self.assertIn("cmd=client|info", a.execute_command("CLIENT", "INFO").decode())
            self.assertGreater(int(d.redis_cli("COMMAND", "COUNT").stdout), 80)
            out = d.redis_cli("COMMAND", "INFO", "get", "nosuch").stdout.split(b"\n")
            self.assertEqual(out[:3], [b"get", b"2", b"readonly"])
            self.assertIn(b"", out)

    def test_redis_benchmark(self):
        with Oborod() as d:
            for extra in ([], ["-P", "16"]):
                r = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(d.port), "-n", "20000",
                                    "-c", "10", "-r", "1000", "-t", "set,get,incr,zadd", "-q"] + extra,
                                   capture_output=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                out = r.stdout.decode()
                for t in ("SET", "GET", "INCR", "ZADD"):
                    self.assertRegex(out, t + r": [\d.]+ requests per second")
            c = client(d)
            self.assertGreater(c.dbsize(), 100)
            self.assertGreater(c.zcard("myzset"), 100)


if __name__ == "__main__":
    harness.main()
