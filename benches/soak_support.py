#!/usr/bin/env python3
"""Helpers for benches/soak.sh (python3 standard library only).

  writer  PATH SECONDS RATE CHECKPOINT OUT PROGRESS
      Writes RATE numbered JSON lines per second to PATH for SECONDS, rotates
      by rename (PATH -> PATH.K) every 30 s, and deletes a rotated file once
      it is three rotations old *and* sidewatch's checkpoint shows it read and
      acknowledged to its end (as a careful logrotate would). Keeps the
      number of lines written so far in PROGRESS and writes the total,
      rotations and rotated files left undeleted to OUT.

  loki    PUSH_PORT CONTROL_PORT EVERY FOR UNTIL
      A stand-in for Loki's push API (`POST /loki/api/v1/push`, JSON bodies,
      optionally gzip; 204 on success, 400 on a malformed body), as in
      tests/logs_support/loki.rs. From EVERY seconds on it fails for FOR
      seconds every EVERY seconds until UNTIL seconds: odd outages answer 503, even outages
      refuse connections (listener closed, open connections cut). Every line
      carrying a `seq` is checked against the line the writer wrote for that
      number (same content, key order and values; fields sidewatch adds are
      ignored) and counted per number. The control port (always up) answers
      `GET /stats?n=N` and takes `POST /kill?written=N` (a SIGKILL of
      sidewatch is about to happen, N lines written so far), so a duplicate
      can be told apart: a second copy of a line written before the latest
      SIGKILL is explained by it (in-flight batches, or events acknowledged
      but not yet checkpointed); a second copy of a line written after it
      is not.

  traffic HOST PORT RATE SECONDS OUT
      RATE HTTP/1.1 keep-alive GET requests per second over 8 connections for
      SECONDS; failed requests (refused, reset, non-2xx) are counted and the
      connection re-opened. Writes a JSON summary to OUT.
"""
import gzip
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROTATE_EVERY = 30.0
ORIGINAL_KEYS = ("timestamp", "level", "request_id", "seq", "message", "intent", "latency_ms", "pad")


def line(n):
    """The line numbered `n`, 200 bytes with its newline (the shape of SLOS.md §5)."""
    s = ('{"timestamp":"2026-12-01T20:00:00Z","level":"info","request_id":"req-%010d","seq":%d,'
         '"message":"Chat message processed","intent":"faq","latency_ms":%d,"pad":"' % (n, n, n % 2000))
    return s + "x" * (197 - len(s)) + '"}'


# ---------------------------------------------------------------- writer

def acknowledged_to_end(checkpoint, path):
    """Whether the checkpoint shows `path`'s inode acknowledged to its size."""
    try:
        st = os.stat(path)
        with open(checkpoint) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return False
    return any(c.get("ino") == st.st_ino and c.get("offset", 0) >= st.st_size for c in doc.get("files", []))


def writer(path, seconds, rate, checkpoint, out, progress):
    seconds, rate = float(seconds), int(rate)
    progress_fd = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    start = time.monotonic()
    last_rotation = start
    n = 0
    rotations = 0
    pending_delete = []
    f = open(path, "a", buffering=1 << 20)
    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= seconds:
            break
        # Catch up with the schedule (at most 0.1 s of lines per burst).
        target = min(int(rate * elapsed), n + rate // 10)
        if target > n:
            f.write("\n".join(line(i) for i in range(n, target)) + "\n")
            f.flush()
            n = target
            os.pwrite(progress_fd, b"%20d\n" % n, 0)
        if now - last_rotation >= ROTATE_EVERY:
            f.close()
            rotations += 1
            os.rename(path, "%s.%d" % (path, rotations))
            f = open(path, "a", buffering=1 << 20)
            last_rotation = now
            if rotations > 3:
                pending_delete.append("%s.%d" % (path, rotations - 3))
            kept = []
            for old in pending_delete:
                if acknowledged_to_end(checkpoint, old):
                    os.remove(old)
                else:
                    kept.append(old)
            pending_delete = kept
        pause = 0.01 - (time.monotonic() - now)
        if pause > 0:
            time.sleep(pause)
    f.close()
    with open(out, "w") as o:
        o.write("%d %d %d\n" % (n, rotations, len(pending_delete)))


# ---------------------------------------------------------------- Loki stand-in

class Tally:
    """What the stand-in received, per line number."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = bytearray()      # copies received per seq (saturating at 255)
        self.epoch_of = bytearray()    # kill epoch of the first copy
        self.epoch = 0                 # SIGKILLs announced so far
        self.boundary = 0              # lines written before the latest SIGKILL
        self.received = 0
        self.duplicates = 0
        self.unexplained = 0
        self.mismatched = 0
        self.access = 0
        self.other = 0
        self.requests = 0
        self.failed_requests = 0       # answered 503 or cut
        self.bad_requests = 0
        self.started = time.monotonic()
        self.dup_by = {}               # "first epoch>this epoch@second" -> duplicates

    def take(self, lines):
        with self.lock:
            for text in lines:
                i = text.find('"seq":')
                if i < 0:
                    if '"kind":"access"' in text:
                        self.access += 1
                    else:
                        self.other += 1
                    continue
                j = i + 6
                k = j
                while k < len(text) and text[k].isdigit():
                    k += 1
                seq = int(text[j:k]) if k > j else -1
                if seq < 0 or not self.matches(text, seq):
                    self.mismatched += 1
                    continue
                if seq >= len(self.counts):
                    grow = max(seq + 1 - len(self.counts), 1 << 20)
                    self.counts.extend(bytes(grow))
                    self.epoch_of.extend(bytes(grow))
                self.received += 1
                c = self.counts[seq]
                if c == 0:
                    self.epoch_of[seq] = min(self.epoch, 255)
                else:
                    self.duplicates += 1
                    if seq >= self.boundary:
                        self.unexplained += 1
                    key = "%d>%d@%d" % (self.epoch_of[seq], self.epoch, time.monotonic() - self.started)
                    self.dup_by[key] = self.dup_by.get(key, 0) + 1
                if c < 255:
                    self.counts[seq] = c + 1

    @staticmethod
    def matches(text, seq):
        expected = line(seq)
        # Fast path: sidewatch keeps the app's fields in order and appends its own.
        if text.startswith(expected[:-1]) and (len(text) == len(expected) or text[len(expected) - 1] == ","):
            return True
        try:
            got = json.loads(text)
            want = json.loads(expected)
        except ValueError:
            return False
        return list(got)[: len(ORIGINAL_KEYS)] == list(ORIGINAL_KEYS) and all(got[k] == want[k] for k in ORIGINAL_KEYS)

    def stats(self, n):
        with self.lock:
            counts = self.counts[:n] + bytes(max(0, n - len(self.counts)))
            missing = counts.count(0)
            first_missing = []
            pos = counts.find(0)
            while pos != -1 and len(first_missing) < 10:
                first_missing.append(pos)
                pos = counts.find(0, pos + 1)
            beyond = self.counts[n:]
            return {
                "written": n, "received": self.received, "distinct": n - missing, "missing": missing,
                "first_missing": first_missing, "duplicates": self.duplicates,
                "unexplained_duplicates": self.unexplained, "mismatched": self.mismatched,
                "beyond_written": len(beyond) - beyond.count(0), "access_events": self.access,
                "other_lines": self.other, "push_requests": self.requests,
                "failed_push_requests": self.failed_requests, "bad_requests": self.bad_requests,
                "kills": self.epoch, "duplicates_by": self.dup_by,
            }


def loki(push_port, control_port, every, length, until):
    push_port, control_port, every, length, until = (
        int(push_port), int(control_port), float(every), float(length), float(until))
    tally = Tally()
    start = time.monotonic()
    state = {"mode": "up", "server": None}
    open_conns = set()
    conns_lock = threading.Lock()
    # Held from the mode check to the answer, so an outage never cuts a
    # request that was already taken (that would be a duplicate of our making).
    serving = threading.Lock()

    class Push(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            with conns_lock:
                open_conns.add(self.connection)

        def finish(self):
            with conns_lock:
                open_conns.discard(self.connection)
            super().finish()

        def do_POST(self):
            size = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(size)
            with serving:
                self.handle_push(body)

        def handle_push(self, body):
            mode = state["mode"]
            tally.requests += 1
            if mode == "refused":
                tally.failed_requests += 1
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if mode == "503":
                tally.failed_requests += 1
                self.reply(503, b"outage")
                return
            try:
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                doc = json.loads(body)
                lines = [v[1] for s in doc["streams"] for v in s["values"]]
                if any(not s.get("stream") for s in doc["streams"]):
                    raise ValueError("empty label set")
            except (ValueError, KeyError, IndexError, TypeError, OSError, EOFError) as e:
                tally.bad_requests += 1
                self.reply(400, str(e).encode())
                return
            tally.take(lines)
            self.reply(204, b"")

        def reply(self, status, body):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    class Control(BaseHTTPRequestHandler):
        def do_GET(self):
            q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            body = json.dumps(tally.stats(int(q.get("n", ["0"])[0]))).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            with tally.lock:
                tally.epoch += 1
                tally.boundary = int(q.get("written", ["0"])[0])
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    def serve_push():
        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", push_port), Push)
        server.daemon_threads = True
        state["server"] = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    control = ThreadingHTTPServer(("127.0.0.1", control_port), Control)
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    serve_push()
    while True:
        time.sleep(0.1)
        t = time.monotonic() - start
        k = int(t // every)
        failing = k >= 1 and (t - k * every) < length and t < until
        want = ("503" if k % 2 == 1 else "refused") if failing else "up"
        if want == state["mode"]:
            continue
        if want == "refused":
            with serving:
                state["mode"] = "refused"
                state["server"].shutdown()
                state["server"].server_close()
                with conns_lock:
                    for c in list(open_conns):
                        try:
                            c.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
        elif state["mode"] == "refused":
            state["mode"] = want
            serve_push()
        else:
            state["mode"] = want
        print("%.0f s: loki %s" % (t, want), flush=True)


# ---------------------------------------------------------------- proxy traffic

def traffic(host, port, rate, seconds, out):
    port, rate, seconds = int(port), float(rate), float(seconds)
    threads = 8
    share = rate / threads
    start = time.monotonic()
    lock = threading.Lock()
    totals = {"sent": 0, "ok": 0, "failed": 0, "errors": {}}

    def one():
        conn = None
        i = 0
        while True:
            due = start + i / share
            now = time.monotonic()
            if due - start >= seconds:
                break
            if due > now:
                time.sleep(due - now)
            i += 1
            outcome = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=5)
                conn.request("GET", "/api/orders/%d?soak=1" % i)
                resp = conn.getresponse()
                resp.read()
                outcome = "ok" if 200 <= resp.status < 300 else "status_%d" % resp.status
            except (OSError, http.client.HTTPException) as e:
                outcome = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                totals["sent"] += 1
                if outcome == "ok":
                    totals["ok"] += 1
                else:
                    totals["failed"] += 1
                    totals["errors"][outcome] = totals["errors"].get(outcome, 0) + 1
            if outcome != "ok" and conn is None:
                time.sleep(0.01)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    totals["seconds"] = time.monotonic() - start
    with open(out, "w") as f:
        json.dump(totals, f)


if __name__ == "__main__":
    {"writer": writer, "loki": loki, "traffic": traffic}[sys.argv[1]](*sys.argv[2:])
