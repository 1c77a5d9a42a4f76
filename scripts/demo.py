"""``make demo``: keyplane, the calls service and nginx on loopback; Ctrl-C stops them all.

Everything lives in a throwaway directory (SQLite database, logs, nginx
files) removed on exit. Two customers get an access key each; the curl lines
to try are printed. ``--port N`` (``make demo PORT=N``) is where nginx, the
address to call, listens; without it, and for keyplane and the calls service
behind it, free ports are used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def usable_port(port: int) -> int:
    """``port`` if it can be listened on here, else a clear message and exit 1 (nothing started)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as error:
            raise SystemExit(
                f"make demo: cannot listen on {HOST}:{port}: {error.strerror or error}; "
                "choose another with PORT=, e.g. make demo PORT=8000"
            ) from None
    return port


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--port", type=int, default=None, help="where nginx listens (default: a free port)"
    )
    args = parser.parse_args(argv)
    if args.port is not None and not 1 <= args.port <= 65535:
        parser.error("--port must be from 1 to 65535")
    return args


def wait_for(port: int, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start on {HOST}:{port}; see the logs above")


def nginx_config(work: Path, keyplane: int, calls: int, listen: int) -> Path:
    site = (ROOT / "examples" / "nginx" / "keyplane-gateway.conf").read_text()
    site = (
        site.replace("server 127.0.0.1:8080;", f"server {HOST}:{keyplane};")
        .replace("server 127.0.0.1:8081;", f"server {HOST}:{calls};")
        .replace("listen 127.0.0.1:8000;", f"listen {HOST}:{listen};")
        .replace("/var/log/nginx/", f"{work}/")
    )
    (work / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = (
        f"{user}worker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/nginx-error.log;\n"
        "events { worker_connections 256; }\nhttp {\n    access_log off;\n"
        + "".join(f"    {kind}_temp_path {work}/{kind};\n" for kind in ("proxy", "fastcgi"))
        + "".join(f"    {kind}_temp_path {work}/{kind};\n" for kind in ("uwsgi", "scgi"))
        + f"    client_body_temp_path {work}/body;\n    include {work}/site.conf;\n}}\n"
    )
    config = work / "nginx.conf"
    config.write_text(main)
    return config


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    gateway_port = free_port() if args.port is None else usable_port(args.port)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise SystemExit(
            "nginx is not installed: run 'make system-deps' (or apt-get install nginx)"
        )
    work = Path(tempfile.mkdtemp(prefix="keyplane-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPLANE_")}
    env.update(
        KEYPLANE_DATA_DIR=str(work),
        KEYPLANE_DATABASE_URL=f"sqlite+aiosqlite:///{work / 'keyplane.db'}",
        KEYPLANE_BOOTSTRAP="false",
        KEYPLANE_LOG_FORMAT="console",
    )
    keyplane_port, calls_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def cli(*args: str) -> dict[str, str]:
        out = subprocess.run(
            [str(BIN / "keyplane"), *args, "--json"],
            env=env,
            cwd=work,
            check=True,
            text=True,
            capture_output=True,
        )
        result: dict[str, str] = json.loads(out.stdout)
        return result

    try:
        subprocess.run([str(BIN / "keyplane"), "migrate"], env=env, cwd=work, check=True)
        keys = []
        for name in ("acme", "globex"):
            customer = cli("customer", "create", "--name", name)
            key = cli("accesskey", "create", "--customer-id", customer["id"], "--expire", "86400")
            keys.append((name, key["token"]))
        serve = [str(BIN / "keyplane"), "serve", "--host", HOST, "--port", str(keyplane_port)]
        processes.append(subprocess.Popen(serve, env=env, cwd=work))
        calls = [sys.executable, str(ROOT / "examples/calls_service/calls_service.py")]
        processes.append(subprocess.Popen([*calls, "--port", str(calls_port)]))
        config = nginx_config(work, keyplane_port, calls_port, gateway_port)
        processes.append(
            subprocess.Popen([nginx, "-c", str(config), "-p", str(work), "-g", "daemon off;"])
        )
        wait_for(keyplane_port, "keyplane")
        wait_for(calls_port, "the calls service")
        wait_for(gateway_port, "nginx")
        url = f"http://{HOST}:{gateway_port}/v1.0/calls"
        (first, first_token), (second, second_token) = keys
        print(f"\nkeyplane {HOST}:{keyplane_port}, calls service {HOST}:{calls_port}, nginx {url}")
        print(f"files in {work} (removed on exit)\n")
        print(f"# {first} places a call, then lists its calls (the seed's example):")
        print(f"curl -X POST -H 'Authorization: Bearer {first_token}' \\")
        print(f'     -d \'{{"source": "+15550100", "destination": "+15550199"}}\' {url}')
        print(f"curl '{url}?accesskey={first_token}'")
        print(f"# {second} sees only its own calls:")
        print(f"curl '{url}?accesskey={second_token}'")
        print("# no key, or a wrong one: keyplane's 401 envelope, through nginx:")
        print(f"curl -i {url}")
        print(f"curl -i '{url}?accesskey=vb_wrong'")
        print("\nCtrl-C stops everything.")
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)
        print("stopped keyplane, the calls service and nginx")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    main(sys.argv[1:])
