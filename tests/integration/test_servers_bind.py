"""The servers the tests start move to another port when theirs was taken meanwhile."""

from __future__ import annotations

import socket

from tests.servers import LOOPBACK, NginxServer, RedisServer


def test_redis_and_nginx_move_when_their_port_is_taken() -> None:
    # A listener that accepts connections and never answers holds the port,
    # as another test's server could between free_port() and the bind.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen(8)
        port = taken.getsockname()[1]
        redis, nginx = RedisServer(port=port), NginxServer(upstreams=[port], port=port)
        try:
            redis.start()
            nginx.start()
            assert port not in (redis.port, nginx.port)
            assert redis.process is not None
            assert redis.process.poll() is None
            assert nginx.process is not None
            assert nginx.process.poll() is None
        finally:
            redis.destroy()
            nginx.destroy()
