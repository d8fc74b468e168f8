#!/usr/bin/env python3
"""A tiny byte-recording TCP proxy: accepts ONE connection on --listen, connects to --upstream,
relays both ways and writes every client->server byte to --out. Exits when the connection ends.
(Also used with --replay FILE to send a capture's bytes to a server, reading and discarding
whatever the server answers.)"""
import argparse, socket, threading, sys, time

def pump(src, dst, record=None):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None:
                record.write(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (dst,):
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass

def proxy(args):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.listen))
    listener.listen(1)
    print("ready", flush=True)
    client, _ = listener.accept()
    host, port = args.upstream.split(":")
    upstream = socket.create_connection((host, int(port)))
    with open(args.out, "wb") as record:
        t1 = threading.Thread(target=pump, args=(client, upstream, record))
        t2 = threading.Thread(target=pump, args=(upstream, client))
        t1.start(); t2.start(); t1.join(); t2.join()

def replay(args):
    host, port = args.upstream.split(":")
    data = open(args.replay, "rb").read()
    conn = socket.create_connection((host, int(port)))
    def drain():
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
    threading.Thread(target=drain, daemon=True).start()
    # C0+C1 first, then wait for the server's S0+S1+S2 before the rest (as a client would).
    conn.sendall(data[:1537])
    time.sleep(0.3)
    conn.sendall(data[1537:])
    time.sleep(args.linger)
    conn.close()

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int)
    p.add_argument("--upstream", required=True)
    p.add_argument("--out")
    p.add_argument("--replay")
    p.add_argument("--linger", type=float, default=2.0)
    a = p.parse_args()
    replay(a) if a.replay else proxy(a)
