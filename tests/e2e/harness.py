"""End-to-end harness: start a real oborod on free ports, wait until it is
ready, tear it down whatever happens, and check its log.

Every test gets its own data directory and ports. Teardown fails the test
if the daemon logged an error that the test did not declare with
expect_log(), or if a sanitizer reported anything.
"""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

OBORO_BIN = os.environ.get("OBORO_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "cmd", "oborod")
BUILD = os.environ.get("OBORO_BUILD") or os.path.join(os.path.dirname(__file__), "..", "..", "build")

_live = []


def _kill_all():
    for p in list(_live):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass


atexit.register(_kill_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, lambda s, f: (_kill_all(), os._exit(128 + s)))

_taken = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now (and that
    this process has not handed out before)."""
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _taken:
            _taken.add(port)
            return port
    raise RuntimeError("no free port")


SANITIZER_RE = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                          r"SUMMARY: UndefinedBehaviorSanitizer)")


class Oborod:
    """One oborod process. Use as a context manager or call stop()."""

    def __init__(self, args=(), config=None, ports=True, wait=True, env=None, preset=None):
        # preset: {"port", "rtmp_port", "http_port", "raft_port", "dir"} to
        # reuse (restart a node of a cluster with its ports and data).
        preset = preset or {}
        self.tmp = tempfile.mkdtemp(prefix="oboro-e2e-")
        self.dir = preset.get("dir") or os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "oborod.log")
        self.port = preset.get("port") or free_port()
        self.rtmp_port = preset.get("rtmp_port") or free_port()
        self.http_port = preset.get("http_port") or free_port()
        self.raft_port = preset.get("raft_port") or free_port()
        self.expected = []
        cmd = [OBORO_BIN]
        if config is not None:
            self.config_path = os.path.join(self.tmp, "oboro.conf")
            with open(self.config_path, "w") as f:
                f.write(config)
            cmd.append(self.config_path)
        if ports:
            cmd += ["--port", str(self.port), "--rtmp-port", str(self.rtmp_port),
                    "--http-port", str(self.http_port), "--raft-port", str(self.raft_port),
                    "--dir", self.dir]
        cmd += list(args)
        self.cmd = cmd
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if env:
            e.update(env)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.tmp,
                                     start_new_session=True, env=e)
        _live.append(self.proc)
        self.returncode = None
        if wait:
            self.wait_ready()

    # -- lifecycle --------------------------------------------------------
    def wait_ready(self, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("oborod exited with %d before it was ready:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.http_port,
                                            timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("oborod not ready after %.0fs:\n%s" % (timeout, self.log_text()))

    def wait_exit(self, timeout=10.0):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("oborod did not exit within %.1fs" % timeout)
        finally:
            if self.proc in _live:
                _live.remove(self.proc)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send sig, wait for the exit, return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait_exit()

    def close(self, check=True):
        """Stop (if running), check the log, remove the temp dir."""
        try:
            if self.proc.poll() is None:
                code = self.stop()
                if check and code != 0:
                    raise AssertionError("oborod exited with %d on SIGTERM:\n%s"
                                         % (code, self.log_text()))
            else:
                self.wait_exit()
            if check:
                self.check_log()
        finally:
            self.log.close()
            if not os.environ.get("OBORO_KEEP_TMP"):
                shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(check=exc_type is None)
        return False

    # -- log --------------------------------------------------------------
    def log_text(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def expect_log(self, pattern):
        """Declare that an error line matching pattern is expected."""
        self.expected.append(re.compile(pattern))

    def check_log(self):
        text = self.log_text()
        m = SANITIZER_RE.search(text)
        if m:
            raise AssertionError("sanitizer report in oborod log:\n" + text[-20000:])
        for line in text.splitlines():
            if "level=error" in line and not any(p.search(line) for p in self.expected):
                raise AssertionError("unexpected error logged by oborod: " + line)

    # -- clients ----------------------------------------------------------
    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def http_get(self, path, timeout=10):
        """(status, headers, body bytes); HTTP errors are returned, not raised."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def http_json(self, path):
        status, _, body = self.http_get(path)
        return status, json.loads(body)

    def redis_cli(self, *args, input=None, timeout=30):
        """Run redis-cli against this daemon; returns CompletedProcess."""
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                              input=input, capture_output=True, timeout=timeout)


def run_oborod(args, timeout=10):
    """Run oborod to completion (for --help, bad config, ...)."""
    p = subprocess.run([OBORO_BIN] + list(args), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def main():
    unittest.main(verbosity=2)
