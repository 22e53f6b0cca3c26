#!/usr/bin/env python3
"""Figures for the classic server (issue 2), each beside a baseline from the
same run:

- the original README session for an original-style client (one recv(1024)
  per message), against our server and against the original stand-in server
  (bench/original_server.py, which sleeps 1 s after each command);
- the server's peak RSS while one client uploads and then downloads a large
  file over the classic protocol (default 1 GiB), beside the RSS of the same
  server idle;
- the server's RSS with N idle connections open (default 2,000), beside the
  RSS before they were opened.

    bench/classic_figures.py [--small]       (--small: sizes for CI)
Needs target/release/miniftp (bench/run builds it).
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.path.join(HERE, "..", "target", "release", "miniftp")


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def start_ours(root, *flags):
    proc = subprocess.Popen(
        [BINARY, "-q", "serve", root, "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    port = int(re.search(r":(\d+)$", line.strip()).group(1))
    return proc, port


def start_original(root):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "original_server.py"), root, "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(proc.stdout.readline().strip().rsplit(":", 1)[1])
    return proc, port


def readme_session_seconds(port, path, rounds):
    out = subprocess.check_output(
        [sys.executable, os.path.join(HERE, "original_client.py"), "127.0.0.1", str(port), path, str(rounds)],
        text=True,
        timeout=600,
    )
    return float(out.strip())


class Classic:
    """A token-framed classic client with large reads, for bulk transfers."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(120)
        self.token = b""
        while len(self.token) < 10:
            self.token += self.sock.recv(10 - len(self.token))
        self.pending = b""
        self.read_message()

    def read_message(self, sink=None):
        """Reads one message; streams it to sink if given, else returns it."""
        token, kept, parts = self.token, self.pending, []
        self.pending = b""
        while True:
            at = kept.find(token)
            if at >= 0:
                body, self.pending = kept[:at], kept[at + len(token):]
                (sink.write(body) if sink else parts.append(body))
                return None if sink else b"".join(parts)
            safe = max(0, len(kept) - (len(token) - 1))
            (sink.write(kept[:safe]) if sink else parts.append(kept[:safe]))
            kept = kept[safe:] + self.sock.recv(1 << 20)

    def send(self, data):
        self.sock.sendall(data + self.token)


def sample_peak(pid, action):
    """Runs action() while the kernel tracks the process's peak RSS."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    before = rss_kib(pid, "VmRSS")
    action()
    return before, rss_kib(pid, "VmHWM")


def bulk_transfer(port, root, size):
    path = os.path.join(root, "..", "bulk-source.bin")
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(chunk)
    client = Classic(port)
    started = time.perf_counter()
    client.sock.sendall(b"ul bulk.bin" + client.token)
    with open(path, "rb") as f:
        client.sock.sendfile(f)
    client.sock.sendall(client.token)
    status = client.read_message()
    assert status == b"/", status
    uploaded = time.perf_counter() - started
    started = time.perf_counter()
    client.send(b"dl bulk.bin")

    class Counter:
        n = 0

        def write(self, data):
            self.n += len(data)

    counter = Counter()
    client.read_message(counter)
    status = client.read_message()
    assert status == b"/" and counter.n == size, (status, counter.n)
    downloaded = time.perf_counter() - started
    os.remove(path)
    return uploaded, downloaded


def idle_connections(port, count):
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        sockets.append(s)
    # Every connection has its token and welcome: the server holds them all.
    for s in sockets:
        s.settimeout(30)
        got = b""
        while got.count(got[:10]) < 2 or len(got) < 20:
            got += s.recv(4096)
    return sockets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="reduced sizes (CI)")
    args = parser.parse_args()
    size = (64 if args.small else 1024) << 20
    idle = 200 if args.small else 2000
    rounds = 2 if args.small else 5

    rows = []
    with tempfile.TemporaryDirectory() as work:
        root = os.path.join(work, "root")
        os.mkdir(root)
        sample = os.path.join(work, "jellyfish.jpg")
        with open(sample, "wb") as f:
            f.write(os.urandom(100_000))

        ours, port = start_ours(root, "--max-connections", str(idle + 100))
        try:
            t_ours = readme_session_seconds(port, sample, rounds)
            idle_rss = rss_kib(ours.pid, "VmRSS")
            (before, peak) = sample_peak(ours.pid, lambda: rows.append(bulk_transfer(port, root, size)))
            up, down = rows.pop()
            before_idle = rss_kib(ours.pid, "VmRSS")
            held = idle_connections(port, idle)
            with_idle = rss_kib(ours.pid, "VmRSS")
            for s in held:
                s.close()
        finally:
            ours.terminate()
            ours.wait()

        original, oport = start_original(root)
        try:
            t_original = readme_session_seconds(oport, sample, 1)
        finally:
            original.kill()
            original.wait()

    mib = size >> 20
    print(f"{'figure':<58} {'ours':>12} {'baseline':>12} {'ratio':>8}")
    print(f"{'README session, original-style client (s)':<58} {t_ours:>12.3f} {t_original:>12.3f} {t_ours / t_original:>8.3f}")
    print(f"{f'server peak RSS, {mib} MiB classic ul+dl (MiB) vs idle':<58} {peak / 1024:>12.1f} {idle_rss / 1024:>12.1f} {peak / idle_rss:>8.2f}")
    print(f"{f'classic ul / dl throughput, {mib} MiB (MiB/s)':<58} {mib / up:>12.0f} {mib / down:>12.0f} {'':>8}")
    print(f"{f'server RSS with {idle} idle connections (MiB) vs none':<58} {with_idle / 1024:>12.1f} {before_idle / 1024:>12.1f} {with_idle / before_idle:>8.2f}")
    print(f"{'  per idle connection (KiB)':<58} {(with_idle - before_idle) / idle:>12.1f}")


if __name__ == "__main__":
    main()
