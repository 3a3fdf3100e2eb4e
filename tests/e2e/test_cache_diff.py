"""Differential test: the same command script goes to redis-server (Debian)
and to oborod over raw sockets, and every reply must be identical, byte for
byte, in RESP2 and in RESP3."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Oborod, free_port


class RedisServer:
    """A throwaway redis-server on a free port, without persistence."""

    def __init__(self, args=()):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="oboro-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmp, "--daemonize", "no"] + list(args),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        harness._live.append(self.proc)
        deadline = time.time() + 10
        while time.time() < deadline and self.proc.poll() is None:
            try:
                c = Conn(self.port)
                if "--requirepass" in args:
                    c.call(["AUTH", list(args)[list(args).index("--requirepass") + 1]])
                info = c.call(["INFO", "server"])
                c.close()
                if b"process_id:%d\r" % self.proc.pid in info:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.close()
        raise AssertionError("redis-server did not start")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc in harness._live:
            harness._live.remove(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_reply(f):
    """One complete reply, as the raw bytes that carried it."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise AssertionError("connection closed mid-reply: %r" % line)
    t = line[:1]
    if t in b"+-:_#,(":
        return line
    if t in b"$!=":
        n = int(line[1:-2])
        return line if n < 0 else line + f.read(n + 2)
    if t in b"*%~>|":
        n = int(line[1:-2])
        if n < 0:
            return line
        k = n * 2 if t in b"%|" else n
        return line + b"".join(read_reply(f) for _ in range(k))
    raise AssertionError("bad reply type: %r" % line)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")

    def call(self, args):
        self.s.sendall(encode(args))
        return read_reply(self.f)

    def pipeline(self, cmds):
        self.s.sendall(b"".join(encode(c) for c in cmds))
        return [read_reply(self.f) for _ in cmds]

    def close(self):
        self.f.close()
        self.s.close()


S = str.split

SCRIPT = [
    S("PING"), S("PING hello"), ["ECHO", "x y"],
    S("SET s1 hello"), S("GET s1"), S("GET nokey"), S("SET s1 world XX GET"),
    S("SET s2 v NX"), S("SET s2 v2 NX"), S("SET s2 v3 NX GET"),
    S("SET s3 v EX 100"), S("TTL s3"), S("SET s3 v KEEPTTL"), S("TTL s3"), S("PTTL nokey"), S("PTTL s1"),
    S("SET s4 v EX 0"), S("SET s4 v EX -5"), S("SET s4 v EX abc"), S("SET s4 v PX 100 EX 100"),
    S("SET s4 v NX XX"), S("SET s4 v KEEPTTL EX 10"), S("SET s4 v GET"), S("SET s4 v foo"), S("SET s4 v EX"),
    S("SET s4 v EXAT 4102444800"), S("EXPIRETIME s4"), S("SET s4 v PXAT 4102444800123"), S("PEXPIRETIME s4"),
    S("SETEX s5 100 v"), S("TTL s5"), S("SETEX s5 0 v"), S("SETEX s5 x v"), S("PSETEX s6 100000 v"), S("TTL s6"),
    S("SETNX s1 x"), S("SETNX s7 x"), S("GETSET s7 y"), S("GETSET s8 y"), S("GETDEL s8"), S("GETDEL s8"),
    S("GETEX s7 EX 50"), S("TTL s7"), S("GETEX s7 PERSIST"), S("TTL s7"), S("GETEX nokey"),
    S("GETEX s7 FOO"), S("GETEX s7 EX 10 PX 10"), S("GETEX s7 EXAT 1"), S("EXISTS s7"),
    S("MSET a 1 b 2 c 3"), S("MGET a b c nokey"), S("MSET a"), S("MSET a 1 b"),
    S("MSETNX a 1 z 2"), S("MSETNX y 1 z 2"), S("MGET y z"),
    S("APPEND a xyz"), S("APPEND newa abc"), S("STRLEN a"), S("STRLEN nokey"),
    S("GETRANGE s1 0 2"), S("GETRANGE s1 -3 -1"), S("GETRANGE s1 5 1"), S("GETRANGE s1 -1 -5"),
    S("GETRANGE nokey 0 1"), S("GETRANGE s1 0 100"), S("GETRANGE s1 a b"),
    S("SETRANGE s1 2 XY"), S("GET s1"), S("SETRANGE sr 5 ab"), S("GET sr"), S("SETRANGE s1 -1 x"),
    ["SETRANGE", "empty", "0", ""], S("EXISTS empty"),
    S("INCR cnt"), S("INCR cnt"), S("INCRBY cnt 10"), S("DECR cnt"), S("DECRBY cnt 5"), S("INCRBY cnt abc"),
    S("INCR s1"), S("SET big 9223372036854775807"), S("INCR big"), S("DECRBY cnt -9223372036854775808"),
    S("SET sp 007"), S("INCR sp"), S("SET neg -5"), S("DECRBY neg 9223372036854775807"),
    S("INCRBYFLOAT fl 10.5"), S("INCRBYFLOAT fl 0.1"), S("INCRBYFLOAT fl -5"), S("INCRBYFLOAT fl abc"),
    S("INCRBYFLOAT s1 1"), S("SET f2 3.0"), S("INCRBYFLOAT f2 1"), S("INCRBYFLOAT f3 5.0e3"),
    S("DEL a b nokey"), S("EXISTS a c c"), S("TYPE c"), S("TYPE nokey"), S("UNLINK y z"),
    S("RENAME c c2"), S("GET c2"), S("RENAME nokey x"), S("RENAME c2 c2"), S("RENAMENX c2 s1"),
    S("RENAMENX c2 c3"), S("EXISTS c2 c3"),
    S("EXPIRE c3 100"), S("TTL c3"), S("EXPIRE c3 200 NX"), S("EXPIRE c3 200 XX"), S("EXPIRE c3 50 GT"),
    S("EXPIRE c3 50 LT"), S("TTL c3"), S("EXPIRE c3 10 NX XX"), S("EXPIRE c3 10 GT LT"), S("EXPIRE c3 10 FOO"),
    S("EXPIRE nokey 10"), S("EXPIRE c3 abc"), S("PEXPIRE c3 100000"), S("TTL c3"),
    S("EXPIREAT c3 4102444800"), S("EXPIRETIME c3"), S("PEXPIRETIME c3"), S("PEXPIREAT c3 4102444800123"),
    S("PEXPIRETIME c3"), S("TTL s1"), S("EXPIRE s1 100 GT"), S("EXPIRE s1 100 LT"), S("TTL s1"), S("PERSIST s1"),
    S("PERSIST c3"), S("PERSIST c3"), S("TTL c3"), S("EXPIRETIME c3"), S("EXPIRETIME nokey"),
    S("EXPIRE c3 -1"), S("EXISTS c3"), S("SET tmp x"), S("EXPIREAT tmp 1"), S("GET tmp"),
    S("EXPIRE s2 9223372036854775807"), S("PEXPIRE s2 9223372036854775807"),
    S("HSET h f1 v1 f2 v2"), S("HSET h f1 v1b f3 v3"), S("HGET h f1"), S("HGET h nof"), S("HGET nokey f"),
    S("HMGET h f1 nof f3"), S("HGETALL h"), S("HKEYS h"), S("HVALS h"), S("HLEN h"), S("HEXISTS h f2"),
    S("HEXISTS h nof"), S("HDEL h f2 nof"), S("HGETALL h"), S("HINCRBY h n 5"), S("HINCRBY h n -2"),
    S("HINCRBY h f1 1"), S("HINCRBY h n abc"), S("HSET h f"), S("HSET h"), S("HGET s1 f"), S("HSET s1 f v"),
    S("HGETALL nokey"), S("HDEL h f1 f3 n"), S("EXISTS h"), S("HSETNX h2 a 1"), S("HSETNX h2 a 2"),
    S("HMSET h2 b 2 c 3"), S("HGETALL h2"), S("HSET h2 b 22"), S("HGETALL h2"),
    S("ZADD z 1 a 2 b 3 c"), S("ZADD z 1.5 a"), S("ZADD z CH 5 a 6 d"), S("ZADD z NX 10 a 11 e"),
    S("ZADD z XX 20 e 21 f"), S("ZADD z GT 0 a"), S("ZADD z LT 0 a"), S("ZADD z INCR 2 b"),
    S("ZADD z INCR 1 b 2 c"), S("ZADD z NX XX 1 a"), S("ZADD z GT LT 1 a"), S("ZADD z NX GT 1 a"),
    S("ZADD z 1"), S("ZADD z abc a"), S("ZADD z XX INCR 1 nomember"), S("ZADD z NX INCR 1 a"),
    S("ZADD z GT CH 100 a 1 b"), S("ZADD z 1e20 big"), S("ZADD z -inf ninf +inf pinf"), S("ZSCORE z big"),
    S("ZSCORE z ninf"), S("ZSCORE z a"), S("ZSCORE z nom"), S("ZMSCORE z a nom b"), S("ZCARD z"),
    S("ZCARD nokey"), S("ZRANK z a"), S("ZREVRANK z a"), S("ZRANK z nom"),
    S("ZRANGE z 0 -1"), S("ZRANGE z 0 -1 WITHSCORES"), S("ZRANGE z 1 2 REV WITHSCORES"), S("ZRANGE z -2 -1"),
    S("ZRANGE z 5 1"), S("ZRANGE z (1 5 BYSCORE"), S("ZRANGE z 5 (1 BYSCORE REV WITHSCORES"),
    S("ZRANGE z -inf +inf BYSCORE LIMIT 1 2"), S("ZRANGE z 0 -1 LIMIT 0 1"), S("ZRANGE z - + BYLEX WITHSCORES"),
    S("ZRANGE z a b BYSCORE"), S("ZRANGE z a b BYLEX"), S("ZRANGE z 0 1 FOO"), S("ZRANGE nokey 0 -1"),
    S("ZREVRANGE z 0 1 WITHSCORES"), S("ZRANGEBYSCORE z 1 10 WITHSCORES LIMIT 0 2"),
    S("ZREVRANGEBYSCORE z 10 1"), S("ZRANGEBYSCORE z -inf +inf LIMIT -1 2"), S("ZRANGEBYSCORE z 1 10 REV"),
    S("ZCOUNT z 1 10"), S("ZCOUNT z (1 (6"), S("ZCOUNT z a b"), S("ZCOUNT z 10 1"),
    S("ZADD lex 0 a 0 b 0 c 0 d"), S("ZRANGE lex [b (d BYLEX"), S("ZRANGE lex - + BYLEX LIMIT 1 2"),
    S("ZRANGE lex + - BYLEX REV"), S("ZRANGE lex (a [c BYLEX REV"),
    S("ZINCRBY z 1.1 a"), S("ZINCRBY z 1 newm"), S("ZINCRBY z abc a"), S("ZSCORE z a"),
    S("ZREM z a nom"), S("ZREMRANGEBYRANK z 0 0"), S("ZRANGE z 0 -1 WITHSCORES"),
    S("ZREMRANGEBYSCORE z 5 6"), S("ZRANGE z 0 -1 WITHSCORES"), S("ZREMRANGEBYSCORE z a 1"),
    S("ZADD zp 1 a 2 b 3 c 4 d"), S("ZPOPMIN zp"), S("ZPOPMAX zp 2"), S("ZPOPMIN zp 0"), S("ZPOPMIN zp -1"),
    S("ZPOPMIN nokey"), S("ZPOPMAX zp 10"), S("EXISTS zp"),
    S("ZADD u1 1 a 2 b"), S("ZADD u2 3 b 4 c"), S("ZUNIONSTORE out 2 u1 u2"), S("ZRANGE out 0 -1 WITHSCORES"),
    S("ZUNIONSTORE out 2 u1 u2 WEIGHTS 2 3 AGGREGATE MAX"), S("ZRANGE out 0 -1 WITHSCORES"),
    S("ZINTERSTORE out 2 u1 u2"), S("ZRANGE out 0 -1 WITHSCORES"), S("ZINTERSTORE out 2 u1 u2 AGGREGATE MIN"),
    S("ZRANGE out 0 -1 WITHSCORES"), S("ZINTERSTORE out 0 u1"), S("ZINTERSTORE out 3 u1 u2"),
    S("ZUNIONSTORE out 2 u1 u2 WEIGHTS 1"), S("ZUNIONSTORE out 2 u1 u2 WEIGHTS a b"),
    S("ZUNIONSTORE out 1 s1"), S("ZUNIONSTORE out 2 u1 u2 AGGREGATE FOO"), S("ZINTERSTORE out 2 u1 nokey"),
    S("EXISTS out"), S("ZADD s1 1 a"), S("GET z"), S("ZSCORE h2 a"), S("ZRANGE h2 0 1"),
    S("PFADD hll a b c d e"), S("PFADD hll a"), S("PFADD hll f"), S("PFCOUNT hll"), S("PFADD hll2 x y z a"),
    S("PFCOUNT hll hll2"), S("PFMERGE hm hll hll2"), S("PFCOUNT hm"), S("PFADD s1 x"), S("PFCOUNT h2"),
    S("PFADD hllempty"), S("PFCOUNT hllempty"), S("PFCOUNT nokey"), S("TYPE hll"),
    ["PFADD", "many"] + ["user:%d" % i for i in range(3000)], S("PFCOUNT many"),
    S("UNKNOWNCMD a b"), S("GET"), S("get s1"), S("sEt mixed 1"), S("SELECT 0"), S("SELECT x"),
    S("DBSIZE"), S("DEL s1 nokey"), S("FLUSHALL"), S("DBSIZE"), S("FLUSHALL FOO"),
]

RESP3_SCRIPT = [
    S("ZADD z 1 a 2 b 3 c"), S("ZRANGE z 0 -1 WITHSCORES"), S("ZSCORE z a"), S("ZSCORE z nom"),
    S("ZPOPMIN z 2"), S("ZPOPMIN z"), S("ZINCRBY z 1.5 q"), S("HSET h a 1 b 2"), S("HGETALL h"),
    S("GET nokey"), S("MGET h nokey"), S("HMGET h a zz"), S("ZMSCORE z q nom"), S("EXISTS h"),
    S("ZADD z INCR 1 q"), S("ZRANGE z 0 -1 WITHSCORES"), S("FLUSHALL"),
]


class DiffTest(unittest.TestCase):
    def compare(self, ports, script, hello3=False):
        conns = [Conn(p) for p in ports]
        try:
            if hello3:
                for c in conns:
                    self.assertTrue(c.call(["HELLO", "3"]).startswith(b"%7\r\n"))
            for cmd in script:
                got = [c.call(cmd) for c in conns]
                self.assertEqual(got[1], got[0], "reply to %r differs (redis first)" % (cmd[:6],))
        finally:
            for c in conns:
                c.close()

    def test_resp2_script(self):
        with RedisServer() as r, Oborod() as d:
            self.compare([r.port, d.port], SCRIPT)

    def test_resp3_script(self):
        with RedisServer() as r, Oborod() as d:
            self.compare([r.port, d.port], RESP3_SCRIPT, hello3=True)

    def test_pipelined_script(self):
        """The whole script in one write: same replies, same order."""
        with RedisServer() as r, Oborod() as d:
            out = []
            for p in (r.port, d.port):
                c = Conn(p)
                try:
                    out.append(c.pipeline(SCRIPT))
                finally:
                    c.close()
            for i, cmd in enumerate(SCRIPT):
                self.assertEqual(out[1][i], out[0][i], "pipelined reply to %r differs" % (cmd[:6],))

    def test_keys_and_scan(self):
        """Same key sets from KEYS and from a full SCAN (order aside)."""
        with RedisServer() as r, Oborod() as d:
            results = []
            for p in (r.port, d.port):
                c = Conn(p)
                try:
                    cmds = [["SET", "user:%d" % i, "v"] for i in range(300)]
                    cmds += [["HSET", "h:%d" % i, "f", "v"] for i in range(50)]
                    cmds += [["ZADD", "z:%d" % i, "1", "m"] for i in range(50)]
                    c.pipeline(cmds)
                    got = [c.call(["KEYS", "user:1*"]).split(b"\r\n"),
                           c.call(["KEYS", "[hz]:?"]).split(b"\r\n")]
                    for typ in (None, "hash", "zset", "string"):
                        seen, cur = set(), b"0"
                        while True:
                            args = ["SCAN", cur, "COUNT", "7"] + (["TYPE", typ] if typ else [])
                            rep = c.call(args).split(b"\r\n")
                            cur = rep[2]
                            seen.update(x for x in rep[5::2] if x)
                            if cur == b"0":
                                break
                        got.append(seen)
                    results.append([sorted(g[2::2]) if isinstance(g, list) else g for g in got])
                finally:
                    c.close()
            self.assertEqual(results[1], results[0])
            self.assertEqual(len(results[1][2]), 400)
            self.assertEqual(len(results[1][3]), 50)

    def test_protocol_errors(self):
        """Malformed requests get Redis's error and the connection closes."""
        bad = [b"*1\r\n$-1\r\n", b"*x\r\n", b"*1\r\n+PING\r\n", b'SET k "abc\r\n',
               b"*1\r\n$999999999999\r\n", b"*20\r\n"]
        with RedisServer(["--requirepass", "pw"]) as r, Oborod(args=["--requirepass", "pw"]) as d:
            for req in bad:
                got = []
                for p in (r.port, d.port):
                    s = socket.create_connection(("127.0.0.1", p), timeout=5)
                    s.sendall(req)
                    data = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    s.close()
                    got.append(data)
                self.assertEqual(got[1], got[0], "reply to %r" % req)
                self.assertTrue(got[1].startswith(b"-ERR Protocol error: "), got[1])
            # oborod still serves
            self.assertEqual(d.redis_cli("-a", "pw", "--no-auth-warning", "PING").stdout.strip(), b"PONG")


if __name__ == "__main__":
    harness.main()
