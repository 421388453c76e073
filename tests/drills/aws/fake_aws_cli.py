#!/usr/bin/env python3
"""A stand-in for `aws ssm start-session` with the document
AWS-StartPortForwardingSessionToRemoteHost. As the real CLI does (awscli/customizations/
sessionmanager.py: StartSession, then check_call of session-manager-plugin, SIGINT ignored
meanwhile), `aws` starts a child "plugin" and waits for it; the plugin listens on
localPortNumber and relays each connection to host:portNumber, as the Session Manager
plugin does through the target instance. A SIGTERM to `aws` alone leaves the plugin running.
FAKE_AWS_MODE=refuse fails like an offline target; FAKE_AWS_MODE=hang never opens the port.
The pids go to FAKE_AWS_PIDFILE (aws) and FAKE_AWS_PIDFILE.plugin."""

import contextlib
import json
import os
import signal
import socket
import subprocess
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


def plugin(params: dict) -> int:
    with open(os.environ["FAKE_AWS_PIDFILE"] + ".plugin", "w") as f:
        f.write(str(os.getpid()))
    host, port = params["host"][0], int(params["portNumber"][0])
    server = socket.create_server(("127.0.0.1", int(params["localPortNumber"][0])))
    print("Waiting for connections...", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection((host, port))
        threading.Thread(target=relay, args=(client, upstream), daemon=True).start()
        threading.Thread(target=relay, args=(upstream, client), daemon=True).start()


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--plugin"]:
        return plugin(json.loads(args[1]))
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
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return subprocess.call([sys.executable, __file__, "--plugin", opts["--parameters"]])


if __name__ == "__main__":
    sys.exit(main())
