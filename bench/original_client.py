#!/usr/bin/env python3
"""A client that reads exactly like the original Mini-FTP client.

It takes the token from ONE recv(1024), and treats a message as complete only
when ONE recv(1024) result ends with the token. Used by the benchmarks to time
the original README session; it hangs (and times out) on a server that lets
two messages arrive together.

    original_client.py HOST PORT FILE [ROUNDS]
"""
import os
import socket
import sys
import time


def receive(sock, token):
    parts = []
    while True:
        chunk = sock.recv(1024)
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        parts.append(chunk)
        if chunk.endswith(token):
            data = b"".join(parts)
            return data[: -len(token)]


def send(sock, token, data):
    sock.sendall(data + token)


def readme_session(host, port, path):
    name = os.path.basename(path)
    with open(path, "rb") as f:
        content = f.read()
    sock = socket.create_connection((host, port))
    sock.settimeout(10)
    token = sock.recv(1024)
    assert len(token) == 10 and token.startswith(b"<"), f"bad token {token!r}"
    welcome = receive(sock, token)
    assert welcome.startswith(b"Current Directory: "), welcome
    statuses = []

    def command(line):
        send(sock, token, line.encode())

    command("mkdir test_dir")
    statuses.append(receive(sock, token))
    command("cd test_dir")
    statuses.append(receive(sock, token))
    command("ul " + name)
    send(sock, token, content)
    statuses.append(receive(sock, token))
    command("info " + name)
    size = receive(sock, token)
    statuses.append(receive(sock, token))
    command("dl " + name)
    downloaded = receive(sock, token)
    statuses.append(receive(sock, token))
    command("rm " + name)
    statuses.append(receive(sock, token))
    command("cd ..")
    statuses.append(receive(sock, token))
    command("rm test_dir")
    statuses.append(receive(sock, token))
    sock.close()
    assert int(size) == len(content), (size, len(content))
    assert downloaded == content, "downloaded bytes differ"
    bad = [s for s in statuses if s.startswith(b"error")]
    assert not bad, bad
    return statuses


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    started = time.perf_counter()
    for _ in range(rounds):
        readme_session(host, port, path)
    elapsed = time.perf_counter() - started
    print(f"{elapsed / rounds:.4f}")


if __name__ == "__main__":
    main()
