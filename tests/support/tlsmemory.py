"""
A TLS handshake between two pyOpenSSL contexts over memory BIOs, with no
socket: C{server, client = connected(server_context, client_context)}.
"""

from OpenSSL import SSL


def connected(server_context, client_context, rounds=10):
    """A server and a client C{SSL.Connection}, their handshake done in memory."""
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    client = SSL.Connection(client_context, None)
    client.set_connect_state()
    for _ in range(rounds):
        for side in (client, server):
            try:
                side.do_handshake()
            except SSL.WantReadError:
                pass
        for source, target in ((client, server), (server, client)):
            while True:
                try:
                    target.bio_write(source.bio_read(65536))
                except SSL.WantReadError:
                    break
    return server, client
