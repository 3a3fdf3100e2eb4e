"""Peer servers for the oboro-bench tests and scripts: a throwaway
redis-server on a free loopback port, killed whatever happens."""
import os
import shutil
import signal
import socket
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
    """Run oboro-bench to completion; returns CompletedProcess (text).
    A sanitizer report on its stderr fails the test whatever the exit code."""
    p = subprocess.run([BENCH_BIN] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if harness.SANITIZER_RE.search(p.stderr):
        raise AssertionError("sanitizer report from oboro-bench %s:\n%s" % (args[0], p.stderr))
    return p


NGINX_CONF = """load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            hls on;
            hls_path {tmp}/hls;
            hls_fragment 1s;
            hls_playlist_length 4s;
        }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{ alias {tmp}/hls/; add_header Cache-Control no-cache; }}
    }}
}}
"""


class NginxRtmp:
    """nginx with libnginx-mod-rtmp as a reference origin: RTMP publish and
    play on rtmp_port, HLS (1 s fragments) on http://.../hls/NAME.m3u8."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="oboro-nginx-")
        os.mkdir(os.path.join(self.tmp, "hls"))
        self.rtmp_port = free_port()
        self.http_port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, rtmp_port=self.rtmp_port,
                                      http_port=self.http_port))
        self.log = open(os.path.join(self.tmp, "out.log"), "wb")
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.tmp], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        harness._live.append(self.proc)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.rtmp_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise AssertionError("nginx did not start")

    def rtmp_url(self, name):
        return "rtmp://127.0.0.1:%d/live/%s" % (self.rtmp_port, name)

    def hls_url(self, name):
        return "http://127.0.0.1:%d/hls/%s.m3u8" % (self.http_port, name)

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.proc in harness._live:
            harness._live.remove(self.proc)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
