#!/usr/bin/env python3
"""A stand-in for the original Mini-FTP server, as PROTOCOL-classic.md and
the seed README describe it: a thread per client, the token, the welcome with
the real absolute path, and a one-second sleep after every command. It is the
baseline that the benchmarks compare our server with.

    original_server.py ROOT PORT   (PORT 0: prints the chosen port)
"""
import os
import random
import socket
import string
import sys
import threading
import time


def receive(sock, token, buffer):
    while token not in buffer[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError
        buffer[0] += chunk
    message, _, rest = buffer[0].partition(token)
    buffer[0] = rest
    return message


def serve(sock, root):
    token = ("<" + "".join(random.choices(string.ascii_letters + string.digits, k=8)) + ">").encode()
    cwd = root
    sock.sendall(token)
    time.sleep(1)
    entries = sorted(os.listdir(cwd))
    dirs = [e for e in entries if os.path.isdir(os.path.join(cwd, e))]
    files = [e for e in entries if not os.path.isdir(os.path.join(cwd, e))]
    welcome = f"Current Directory: {cwd}:\n|" + "\n-- " + "\n-- ".join(dirs) + "\n-- " + "\n-- ".join(files)
    sock.sendall(welcome.encode() + token)
    buffer = [b""]
    while True:
        try:
            line = receive(sock, token, buffer).decode()
        except ConnectionError:
            return
        verb, _, arg = line.partition(" ")
        target = os.path.join(cwd, arg)
        if verb == "exit":
            return
        if verb == "cd":
            cwd = os.path.normpath(target)
        elif verb == "mkdir":
            os.mkdir(target)
        elif verb == "rm":
            os.rmdir(target) if os.path.isdir(target) else os.remove(target)
        elif verb == "ul":
            with open(target, "wb") as f:
                f.write(receive(sock, token, buffer))
        elif verb == "dl":
            with open(target, "rb") as f:
                sock.sendall(f.read() + token)
            time.sleep(1)
        elif verb == "info":
            sock.sendall(str(os.path.getsize(target)).encode() + token)
            time.sleep(1)
        elif verb == "mv":
            src, dst = arg.split(" ", 1)
            os.rename(os.path.join(cwd, src), os.path.join(cwd, dst))
        time.sleep(1)
        sock.sendall(cwd.encode() + token)


def main():
    root = os.path.abspath(sys.argv[1])
    listener = socket.create_server(("127.0.0.1", int(sys.argv[2])))
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock, root), daemon=True).start()


if __name__ == "__main__":
    main()
