"""Shared by the scripts under scripts/bench/: start oborod and the peers
(redis-server, nginx with the RTMP module) on free loopback ports, run
oboro-bench, clean up whatever happens."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_procs = []
_tmps = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spawn(cmd, **kw):
    """Start cmd in a process group of its own; cleanup() stops it."""
    p = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    _procs.append(p)
    return p


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tmp(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmps.append(d)
    return d


def cleanup():
    """Stop every process started here: SIGTERM (servers shut down the way
    they would in production), SIGKILL after 5 s; then the temporary dirs."""
    for p in _procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
    for p in _procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    del _procs[:]
    for d in _tmps:
        shutil.rmtree(d, ignore_errors=True)
    del _tmps[:]


signal.signal(signal.SIGTERM, lambda s, f: (cleanup(), os._exit(143)))


def _wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError("%s not ready after %ds" % (what, timeout))


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start_oborod(build):
    """Returns dict(pid, port, rtmp_port, http_port)."""
    tmp = _tmp("oboro-bench-d-")
    d = {"port": free_port(), "rtmp_port": free_port(), "http_port": free_port()}
    p = spawn([os.path.join(build, "cmd", "oborod"), "--port", str(d["port"]),
                "--rtmp-port", str(d["rtmp_port"]), "--http-port", str(d["http_port"]),
                "--raft-port", str(free_port()), "--dir", os.path.join(tmp, "data"),
                "--loglevel", "warning"],
               stdout=open(os.path.join(tmp, "oborod.log"), "wb"), stderr=subprocess.STDOUT, cwd=tmp)
    d["pid"] = p.pid

    def healthy():
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % d["http_port"], timeout=1) as r:
                return r.status == 200
        except OSError:
            return False
    _wait(healthy, 20, "oborod")
    return d


def start_redis():
    tmp = _tmp("oboro-bench-r-")
    port = free_port()
    p = spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", tmp],
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: _connects(port), 10, "redis-server")
    return {"pid": p.pid, "port": port}


def start_nginx_rtmp():
    """nginx + libnginx-mod-rtmp: RTMP on rtmp_port, HLS (1 s fragments)
    under http://127.0.0.1:http_port/hls/NAME.m3u8."""
    tmp = _tmp("oboro-bench-n-")
    os.mkdir(os.path.join(tmp, "hls"))
    n = {"rtmp_port": free_port(), "http_port": free_port()}
    conf = os.path.join(tmp, "nginx.conf")
    temp_paths = "".join("    %s_temp_path %s/%s;\n" % (k, tmp, k)
                         for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(conf, "w") as f:
        f.write("load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n"
                "daemon off;\nmaster_process off;\npid %(t)s/nginx.pid;\n"
                "error_log %(t)s/error.log warn;\nevents { worker_connections 1024; }\n"
                "rtmp { server { listen 127.0.0.1:%(r)d; chunk_size 4096;\n"
                "  application live { live on; hls on; hls_path %(t)s/hls; hls_fragment 1s;"
                " hls_playlist_length 4s; } } }\n"
                "http { access_log off;\n%(tp)s"
                "  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }\n"
                "  server { listen 127.0.0.1:%(h)d;\n"
                "    location /hls/ { alias %(t)s/hls/; add_header Cache-Control no-cache; } } }\n"
                % {"t": tmp, "r": n["rtmp_port"], "h": n["http_port"], "tp": temp_paths})
    p = spawn(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n["pid"] = p.pid
    _wait(lambda: _connects(n["rtmp_port"]), 10, "nginx")
    return n


def answers(port, request, prefix):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(request)
            return s.recv(64).startswith(prefix)
    except OSError:
        return False


def bench(build, *args, timeout=600):
    """Run oboro-bench with --json; returns the parsed object (or raises)."""
    cmd = [os.path.join(build, "cmd", "oboro-bench")] + [str(a) for a in args] + ["--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not p.stdout.strip():
        raise RuntimeError("%s: %s" % (" ".join(cmd), p.stderr.strip()))
    return json.loads(p.stdout)


def ms(ns):
    return "%.3f" % (ns / 1e6)


def ratio(a, b):
    return "%.2f" % (a / b) if b else "n/a"
