#!/usr/bin/env python3
"""A TCP proxy that scripts/chaos.sh controls, to take a database away.

    proxy.py --listen-port 0 --upstream 127.0.0.1:5432 --port-file F [--log F]

Forwards every connection to the upstream. Signals switch it:

    SIGUSR1  down: close every open connection at once and refuse new ones
             (the listening socket is closed, so a connect gets ECONNREFUSED);
             with --mode blackhole, keep listening but accept and hold new
             connections silently, and stop forwarding on the open ones (a
             network partition: callers wait for their timeouts instead).
             With --mode-file, the file (read at each SIGUSR1) names the
             mode of that outage: refuse or blackhole.
    SIGUSR2  up: listen (or forward) again on the same port.
    SIGTERM  exit.

A down period can also be bounded by the proxy itself: with --down-for N,
SIGUSR1 comes back up by itself after N seconds (the script sends SIGUSR2
as well; the earlier wins). The chosen port is written to --port-file once
listening. Every change is logged with a Unix timestamp. Standard library
only.
"""

import argparse
import asyncio
import signal
import os
import socket
import sys
import time


class Proxy:
    def __init__(self, host, port, upstream, mode, down_for, log, mode_file=None):
        self.mode_file = mode_file
        self.host = host
        self.port = port
        self.up_host, self.up_port = upstream
        self.mode = mode
        self.down_for = down_for
        self.log_file = log
        self.server = None
        self.down = False
        self.conns = set()  # (client_writer, upstream_writer or None)
        self.held = set()  # blackholed client writers
        self.timer = None
        self.total = 0
        self.stop = asyncio.Event()

    def log(self, msg):
        line = f"{time.time():.3f} proxy: {msg}\n"
        self.log_file.write(line)
        self.log_file.flush()

    async def listen(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        sock.listen(256)
        sock.setblocking(False)
        self.server = await asyncio.start_server(self.handle, sock=sock)

    async def handle(self, reader, writer):
        self.total += 1
        if self.down:  # blackhole mode: accept and hold, say nothing
            self.held.add(writer)
            try:
                await reader.read()  # until the client gives up
            except (ConnectionError, OSError):
                pass
            self.held.discard(writer)
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(self.up_host, self.up_port), timeout=5
            )
        except (OSError, asyncio.TimeoutError) as e:
            self.log(f"upstream connect failed: {e}")
            writer.close()
            return
        pair = (writer, up_writer)
        self.conns.add(pair)
        try:
            await asyncio.gather(
                self.pipe(reader, up_writer), self.pipe(up_reader, writer)
            )
        except asyncio.CancelledError:
            pass  # the proxy exits
        finally:
            self.conns.discard(pair)
            for w in pair:
                w.close()

    async def pipe(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                while self.down and self.mode == "blackhole":
                    await asyncio.sleep(0.05)  # bytes in flight go nowhere
                    if writer.is_closing():
                        return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.write_eof()
            except (OSError, RuntimeError, AttributeError):
                pass

    def go_down(self):
        if self.down:
            return
        if self.mode_file:
            try:
                with open(self.mode_file, encoding="utf-8") as f:
                    mode = f.read().strip()
                if mode in ("refuse", "blackhole"):
                    self.mode = mode
            except OSError:
                pass
        self.down = True
        n = len(self.conns)
        if self.mode == "refuse":
            self.server.close()  # new connects: refused
            for client, upstream in list(self.conns):
                for w in (client, upstream):
                    transport = w.transport
                    if transport is not None:
                        transport.abort()  # RST, not a polite close
            self.conns.clear()
            self.log(f"DOWN (refuse): dropped {n} connections, refusing new ones")
        else:
            self.log(f"DOWN (blackhole): {n} connections stalled, new ones held")
        if self.down_for > 0:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(self.down_for, self.come_up)

    def come_up(self):
        asyncio.get_running_loop().create_task(self.go_up())

    async def go_up(self):
        if not self.down:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.mode == "refuse":
            for attempt in range(50):
                try:
                    await self.listen()
                    break
                except OSError as e:
                    self.log(f"re-listen failed ({e}), retrying")
                    await asyncio.sleep(0.1)
            else:
                self.log("cannot listen again; exiting")
                self.stop.set()
                return
        else:
            # The partition ends: held connections were never answered,
            # and stalled ones lost their bytes; drop both so that
            # clients reconnect cleanly.
            for w in list(self.held):
                if w.transport is not None:
                    w.transport.abort()
            for client, upstream in list(self.conns):
                for w in (client, upstream):
                    if w.transport is not None:
                        w.transport.abort()
        self.down = False
        self.log("UP: accepting and forwarding again")


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen-host", default="127.0.0.1")
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--upstream", required=True, help="HOST:PORT")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--mode", choices=["refuse", "blackhole"], default="refuse")
    ap.add_argument("--mode-file", default=None,
                    help="read at each SIGUSR1: refuse or blackhole (else --mode)")
    ap.add_argument("--down-for", type=float, default=0.0)
    ap.add_argument("--log", default="-")
    a = ap.parse_args()
    host, _, port = a.upstream.rpartition(":")
    log = sys.stderr if a.log == "-" else open(a.log, "a", encoding="utf-8")
    p = Proxy(a.listen_host, a.listen_port, (host, int(port)), a.mode, a.down_for, log,
              a.mode_file)
    await p.listen()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, p.go_down)
    loop.add_signal_handler(signal.SIGUSR2, p.come_up)
    loop.add_signal_handler(signal.SIGTERM, p.stop.set)
    loop.add_signal_handler(signal.SIGINT, p.stop.set)
    with open(a.port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(f"{p.port}\n")
    os.replace(a.port_file + ".tmp", a.port_file)
    p.log(f"listening on {a.listen_host}:{p.port} -> {a.upstream} (mode {a.mode})")
    await p.stop.wait()
    p.log(f"exiting after {p.total} connections")


if __name__ == "__main__":
    asyncio.run(main())
