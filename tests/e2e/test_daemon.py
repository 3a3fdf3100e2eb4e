"""The daemon as a whole: start, health, metrics, signals, configuration
errors, busy ports."""
import os
import signal
import socket
import subprocess
import time
import unittest

import harness
from harness import Oborod, free_port, run_oborod


class DaemonTest(unittest.TestCase):
    def test_healthz(self):
        with Oborod() as d:
            status, body = d.http_json("/healthz")
            self.assertEqual(status, 200)
            self.assertEqual(body["status"], "ok")
            self.assertRegex(body["version"], r"^\d+\.\d+\.\d+$")
            self.assertIsInstance(body["uptime_seconds"], int)

    def test_redis_cli_ping(self):
        with Oborod() as d:
            r = d.redis_cli("PING")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), b"PONG")

    def test_metrics(self):
        with Oborod() as d:
            status, headers, body = d.http_get("/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(headers["Content-Type"].startswith("text/plain"))
            text = body.decode()
            self.assertIn("# TYPE oboro_uptime_seconds gauge", text)
            self.assertRegex(text, r'oboro_memory_live_bytes\{tag="cache.keys"\} \d+')
            self.assertRegex(text, r"oboro_memory_rss_private_bytes [1-9]\d*")
            # every sample line is NAME{labels} VALUE
            for line in text.splitlines():
                if line and not line.startswith("#"):
                    self.assertRegex(line, r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? -?[0-9.e+-]+$", line)

    def test_debug_memory(self):
        with Oborod() as d:
            status, body = d.http_json("/debug/memory")
            self.assertEqual(status, 200)
            self.assertIn("hub.packets", body["tags"])
            self.assertGreater(body["rss_private"], 0)

    def test_unknown_path_404(self):
        with Oborod() as d:
            status, _, _ = d.http_get("/nope")
            self.assertEqual(status, 404)

    def test_sigterm_exits_zero(self):
        d = Oborod()
        try:
            # a connected client must not hold the shutdown up
            s = socket.create_connection(("127.0.0.1", d.port))
            t0 = time.monotonic()
            code = d.stop(signal.SIGTERM, timeout=5)
            self.assertEqual(code, 0)
            self.assertLess(time.monotonic() - t0, 3.0)
            s.close()
            self.assertIn('msg="stopped"', d.log_text())
        finally:
            d.close()

    def test_sigint_exits_zero(self):
        d = Oborod()
        try:
            self.assertEqual(d.stop(signal.SIGINT), 0)
        finally:
            d.close()

    def test_sighup_reopens_log(self):
        d = Oborod(wait=False, args=["--logfile", "oborod-file.log"])
        try:
            d.wait_ready()
            logfile = os.path.join(d.tmp, "oborod-file.log")
            os.rename(logfile, logfile + ".1")
            d.proc.send_signal(signal.SIGHUP)
            # the file appears when it is reopened; its first line may be
            # written a moment later
            deadline = time.time() + 10
            text = ""
            while "log reopened" not in text and time.time() < deadline:
                time.sleep(0.05)
                if os.path.exists(logfile):
                    with open(logfile) as f:
                        text = f.read()
            self.assertTrue(os.path.exists(logfile))
            self.assertIn("log reopened", text)
        finally:
            d.close()

    def test_help_lists_directives(self):
        code, out, err = run_oborod(["--help"])
        self.assertEqual(code, 0)
        for name in ["bind", "port", "rtmp-port", "http-port", "raft-port", "dir",
                     "loglevel", "config"]:
            self.assertRegex(out, r"--%s\s" % name)
        self.assertIn("6379", out)
        self.assertIn("1935", out)

    def test_bad_config_exits_2_and_names_directive(self):
        d = Oborod(config="port 6380\nno-such-directive 1\n", wait=False)
        try:
            code = d.wait_exit()
            self.assertEqual(code, 2)
            log = d.log_text()
            self.assertIn("oboro.conf:2: unknown directive 'no-such-directive'", log)
        finally:
            d.close(check=False)

    def test_bad_value_exits_2(self):
        d = Oborod(config="loglevel loud\n", wait=False)
        try:
            self.assertEqual(d.wait_exit(), 2)
            self.assertIn("oboro.conf:1: directive 'loglevel'", d.log_text())
        finally:
            d.close(check=False)
        code, out, err = run_oborod(["--port", "notaport"])
        self.assertEqual(code, 2)
        self.assertIn("--port", err)
        code, out, err = run_oborod(["--frobnicate", "1"])
        self.assertEqual(code, 2)
        self.assertIn("unknown flag '--frobnicate'", err)

    def test_flags_override_file(self):
        http = free_port()
        d = Oborod(config="http-port 1\n", args=["--http-port", str(http)], wait=False)
        d.http_port = http
        try:
            d.wait_ready()
        finally:
            d.close()

    def test_busy_port_exits_1(self):
        busy = socket.socket()
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            d = Oborod(args=["--rtmp-port", str(port)], wait=False)
            try:
                self.assertEqual(d.wait_exit(), 1)
                lines = d.log_text().strip().splitlines()
                self.assertEqual(len(lines), 1, lines)
                self.assertIn("rtmp-port %d" % port, lines[0])
                self.assertIn("already in use", lines[0])
            finally:
                d.close(check=False)
        finally:
            busy.close()

    def test_default_dir_created(self):
        d = Oborod()
        try:
            self.assertTrue(os.path.isdir(d.dir))
        finally:
            d.close()


if __name__ == "__main__":
    harness.main()
