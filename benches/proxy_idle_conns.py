#!/usr/bin/env python3
"""Memory per idle client connection through the proxy: sidewatch's RSS
before and after N keep-alive client connections that each made one GET
(to nginx `return 200`) and then stay open, read after one malloc_trim
round. Run by hand (root, Debian 12, nginx installed by benches/proxy.sh):

    python3 benches/proxy_idle_conns.py [connections]   (default 2000)
"""
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def one_request(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    await writer.drain()
    data = b""
    while not data.endswith(b"ok\n"):
        chunk = await reader.read(4096)
        if not chunk:
            raise RuntimeError(f"connection closed after {data!r}")
        data += chunk
    return reader, writer


async def open_idle(port, count):
    connections = []
    for start in range(0, count, 200):
        batch = min(200, count - start)
        connections += await asyncio.gather(*[one_request(port) for _ in range(batch)])
    return connections


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    resource.setrlimit(resource.RLIMIT_NOFILE, (count * 3 + 1000,) * 2)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "sidewatch")
    work = tempfile.mkdtemp()
    app, proxy, admin = free_port(), free_port(), free_port()
    with open(f"{work}/nginx.conf", "w") as conf:
        conf.write(f"""daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx.err;
worker_rlimit_nofile {count * 2 + 100};
events {{ worker_connections {count + 100}; }}
http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server {{ listen 127.0.0.1:{app}; location / {{ return 200 "ok\\n"; }} }} }}
""")
    with open(f"{work}/sidewatch.toml", "w") as conf:
        conf.write(f"""[admin]
listen = "127.0.0.1:{admin}"
[process]
enabled = false
[proxy]
listen = "127.0.0.1:{proxy}"
upstream = "127.0.0.1:{app}"
access_log = false
""")
    nginx = subprocess.Popen(["nginx", "-c", f"{work}/nginx.conf", "-p", work])
    sidewatch = subprocess.Popen([binary, "run", "--config", f"{work}/sidewatch.toml"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        before = rss_kib(sidewatch.pid)

        async def measure():
            connections = await open_idle(proxy, count)
            await asyncio.sleep(11)  # one malloc_trim round (every 10 s)
            after = rss_kib(sidewatch.pid)
            for _, writer in connections:
                writer.close()
            return after

        after = asyncio.run(measure())
        print(f"RSS {before} kB -> {after} kB with {count} idle client connections "
              f"(each with its app connection): {(after - before) / count:.1f} kB per connection")
        print(f"RESULT proxy.idle_connection_kib {(after - before) / count:.1f}")
    finally:
        sidewatch.terminate()
        nginx.terminate()
        sidewatch.wait()
        nginx.wait()


if __name__ == "__main__":
    main()
