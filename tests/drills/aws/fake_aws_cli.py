#!/usr/bin/env python3
"""A stand-in for `aws ssm start-session` with the document
AWS-StartPortForwardingSessionToRemoteHost: it listens on localPortNumber and relays each
connection to host:portNumber, as the Session Manager plugin does through the target
instance. FAKE_AWS_MODE=refuse fails like an offline target; FAKE_AWS_MODE=hang never opens
the port. Its pid goes to FAKE_AWS_PIDFILE."""

import contextlib
import json
import os
import socket
import sys
import threading


def relay(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def main() -> int:
    args = sys.argv[1:]
    with open(os.environ["FAKE_AWS_PIDFILE"], "w") as f:
        f.write(str(os.getpid()))
    if args[:2] != ["ssm", "start-session"]:
        print(f"unexpected: {args}", file=sys.stderr)
        return 2
    opts = dict(zip(args[2::2], args[3::2], strict=False))
    if opts.get("--document-name") != "AWS-StartPortForwardingSessionToRemoteHost":
        print("wrong document", file=sys.stderr)
        return 2
    mode = os.environ.get("FAKE_AWS_MODE", "")
    if mode == "refuse":
        print(
            "An error occurred (TargetNotConnected) when calling the StartSession operation: "
            f"{opts['--target']} is not connected.",
            file=sys.stderr,
        )
        return 254
    if mode == "hang":
        threading.Event().wait()
    params = json.loads(opts["--parameters"])
    host, port = params["host"][0], int(params["portNumber"][0])
    server = socket.create_server(("127.0.0.1", int(params["localPortNumber"][0])))
    print("Waiting for connections...", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection((host, port))
        threading.Thread(target=relay, args=(client, upstream), daemon=True).start()
        threading.Thread(target=relay, args=(upstream, client), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
