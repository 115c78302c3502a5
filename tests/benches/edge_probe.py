#!/usr/bin/env python3
"""Probes issue 16's HTTP-edge items against a built binary and prints figures (no asserts):

- memory: peak RSS (VmHWM) before and after 60 concurrent unsigned POST /webhook requests
  that each send a whole 3 MB body (item 12: refused before the body is read);
- API token guessing: 300 wrong bearer tokens in a row over one connection, the time taken
  and the statuses answered (item 13: 429 after api.max_failures_per_minute).

Usage: python3 tests/benches/edge_probe.py [path/to/insurebot]   (run from the repository root;
default target/release/insurebot). Starts `insurebot serve` in sandbox mode on a temporary
SQLite database and stops it afterwards.
"""

import collections
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/insurebot"
TOKEN = "probe-api-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def unsigned_post(port, size, results):
    body = b"{" + b" " * (size - 2) + b"}"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(
                b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                + f"content-length: {size}\r\n\r\n".encode()
            )
            try:
                s.sendall(body)
            except OSError:
                pass  # the server answered and closed before the body was all sent
            results.append(s.recv(64).split(b"\r\n")[0].decode(errors="replace"))
    except OSError as e:
        results.append(f"error: {e}")


def main():
    port = free_port()
    tmp = tempfile.mkdtemp()
    env = dict(
        os.environ,
        INSUREBOT_LISTEN=f"127.0.0.1:{port}",
        INSUREBOT_DATABASE_URL=f"sqlite://{tmp}/probe.db?mode=rwc",
        INSUREBOT_DIALOGUE_HANDLER="echo",
        INSUREBOT_API_TOKEN=TOKEN,
        INSUREBOT_LOG_FILTER="error",
    )
    server = subprocess.Popen([BINARY, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("server did not start")

        before = rss_kb(server.pid, "VmHWM")
        results = []
        threads = [threading.Thread(target=unsigned_post, args=(port, 3 * 1024 * 1024, results))
                   for _ in range(60)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.time() - started
        after = rss_kb(server.pid, "VmHWM")
        print(f"60 concurrent unsigned 3 MB webhooks: {dict(collections.Counter(results))} "
              f"in {took:.2f} s; peak RSS {before / 1024:.0f} MB -> {after / 1024:.0f} MB")

        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        statuses = collections.Counter()
        started = time.time()
        for i in range(300):
            c.request("GET", "/api/v1/outbox/1", headers={"Authorization": f"Bearer guess-{i:020}"})
            r = c.getresponse()
            r.read()
            statuses[r.status] += 1
        took = time.time() - started
        print(f"300 wrong API tokens in {took:.2f} s: {dict(statuses)}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
