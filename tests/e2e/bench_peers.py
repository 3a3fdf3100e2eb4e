"""Peer servers for the oboro-bench tests and scripts: a throwaway
redis-server on a free loopback port, killed whatever happens."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import harness
from harness import free_port

BENCH_BIN = os.path.join(harness.BUILD, "cmd", "oboro-bench")


class RedisServer:
    """redis-server without persistence on a free port."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="oboro-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmp, "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        harness._live.append(self.proc)
        deadline = time.time() + 10
        while time.time() < deadline:
            r = subprocess.run(["redis-cli", "-p", str(self.port), "PING"], capture_output=True)
            if r.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        self.close()
        raise AssertionError("redis-server did not start")

    @property
    def pid(self):
        return self.proc.pid

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.proc in harness._live:
            harness._live.remove(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def run_bench(*args, timeout=120):
    """Run oboro-bench to completion; returns CompletedProcess (text)."""
    return subprocess.run([BENCH_BIN] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
