"""
What this machine charges for the work under two of compare.py's rows, with
no HTTP and no registry around it:

- ``tls``: the CPU per GB of sending over TLS on 127.0.0.1 with our TLS
  layer's encryption (``spectroreg.tls.protocol.seal`` over a memory BIO,
  partial writes off, 256 KiB writes), and of the process receiving it with
  Python's ``ssl`` (as compare.py's load client does), both measured; then
  the same with OpenSSL writing to the socket itself (a socket BIO: no
  copies into and out of a memory BIO, but one ``write`` per 16 KiB
  record), the other way a TLS layer could send;
- ``fsync``: the CPU and the time per ``fsync`` of a small new file and of
  a directory after a ``mkdir`` in it, under ``--dir`` (put it on the
  filesystem the registry's storage is on).

    python3 bench/floors.py [--size 1G] [--count 300] [--dir /var/lib/registry]

Run it with the Python whose packages spectroreg uses (``/usr/bin/python3``
for Debian's, a virtualenv's ``python`` for PyPI's).
"""

import argparse
import os
import resource
import shutil
import socket
import ssl
import sys
import tempfile
import time

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, SOURCE_ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CHUNK = 256 * 1024


def cpu_seconds(usage):
    return usage.ru_utime + usage.ru_stime


def _receive(port, result_fd):
    """In a child process: read everything over TLS; report its CPU time."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port))) as conn:
        started = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF))
        buffer = bytearray(1 << 20)
        while conn.recv_into(buffer):
            pass
        used = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - started
    os.write(result_fd, repr(used).encode())


def _handshake(conn, sock):
    from OpenSSL import SSL

    while True:
        try:
            conn.do_handshake()
            break
        except SSL.WantReadError:
            _flush(conn, sock)
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("the receiver left during the handshake")
            conn.bio_write(data)
    _flush(conn, sock)


def _flush(conn, sock):
    """Send what OpenSSL has produced for the receiver."""
    from spectroreg.tls.protocol import drain

    data = drain(conn)
    if data:
        sock.sendall(data)


def _send_sealed(conn, sock, chunk):
    """Our TLS layer's way: encrypt into the memory BIO, send what it holds."""
    from spectroreg.tls.protocol import seal

    taken, ciphertext, problem = seal(conn, chunk)
    if problem is not None:
        raise RuntimeError("TLS failed: {}".format(problem))
    sock.sendall(ciphertext)
    return taken


def _send_on_socket(conn, sock, chunk):
    """OpenSSL on the socket itself: it writes each record as it makes it."""
    conn.sendall(chunk)
    return len(chunk)


def measure_tls(size, workdir, on_socket=False):
    """
    (sender CPU s/GB, receiver CPU s/GB, MB/s, cipher) for SIZE bytes, sent
    through a memory BIO as our TLS layer does, or with C{on_socket}
    through OpenSSL's socket BIO.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from OpenSSL import SSL

    from compare import make_certificate
    from spectroreg.config.settings import TLSSettings
    from spectroreg.tls.context import ContextPolicy
    from spectroreg.tls.protocol import whole_writes

    cert, key = make_certificate(workdir)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the receiving process
        try:
            os.close(read_end)
            _receive(listener.getsockname()[1], write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    sock, _ = listener.accept()
    listener.close()
    # As the daemon sets it on every connection.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # The context the daemon builds for http.tls (suites, options).
    with open(key, "rb") as f:
        private_key = serialization.load_pem_private_key(f.read(), None)
    with open(cert, "rb") as f:
        certificate = x509.load_pem_x509_certificate(f.read())
    context = ContextPolicy.from_settings(TLSSettings()).build(private_key, [certificate])
    whole_writes(context)
    if on_socket:
        conn = SSL.Connection(context, sock)
        conn.set_accept_state()
        conn.do_handshake()
        send = _send_on_socket
    else:
        conn = SSL.Connection(context, None)
        conn.set_accept_state()
        _handshake(conn, sock)
        send = _send_sealed
    chunk = os.urandom(CHUNK)
    started = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF))
    began = time.monotonic()
    sent = 0
    while sent < size:
        sent += send(conn, sock, chunk)
    conn.shutdown()
    if not on_socket:
        _flush(conn, sock)
    sock.shutdown(socket.SHUT_WR)
    sender = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - started
    receiver_text = b""
    while True:
        part = os.read(read_end, 100)
        if not part:
            break
        receiver_text += part
    elapsed = time.monotonic() - began
    os.waitpid(child, 0)
    sock.close()
    gb = sent / 1e9
    return sender / gb, float(receiver_text.decode()) / gb, sent / elapsed / 1e6, conn.get_cipher_name()


def measure_fsync(directory, count):
    """(name, CPU µs, wall µs) per operation, COUNT of each, in a new directory under DIRECTORY."""
    work = tempfile.mkdtemp(prefix="floors-", dir=directory)
    try:
        def new_file(i, flush):
            fd = os.open(os.path.join(work, "{}-{}".format(flush, i)), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
            try:
                os.write(fd, b"sha256:" + b"0" * 64)
                if flush:
                    os.fsync(fd)
            finally:
                os.close(fd)

        def new_directory(i):
            os.mkdir(os.path.join(work, "d{}".format(i)))
            fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        results = []
        for name, step in (("small file, no fsync", lambda i: new_file(i, False)),
                           ("small file, fsync", lambda i: new_file(i, True)),
                           ("mkdir, fsync of the directory", new_directory)):
            started = time.process_time()
            began = time.perf_counter()
            for i in range(count):
                step(i)
            results.append((name, (time.process_time() - started) / count * 1e6,
                            (time.perf_counter() - began) / count * 1e6))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def steady_allocator():
    """
    Have glibc keep freed large buffers for reuse, as a long-running server's
    heap does: otherwise, depending on the heap's layout when the measurement
    starts, every 256 KiB buffer can come from fresh pages (a page fault and
    the kernel zeroing each page), which doubles the sender's CPU.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    trim_threshold, mmap_threshold = -1, -3  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
    return bool(mallopt(trim_threshold, 64 * 1024 * 1024) and mallopt(mmap_threshold, 32 * 1024 * 1024))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="bytes sent over TLS (default 1G)")
    parser.add_argument("--count", type=int, default=300, help="fsyncs of each kind (default 300)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the fsyncs are made")
    parser.add_argument("--only", choices=("tls", "fsync"), help="one of the two")
    options = parser.parse_args(argv)
    print("Python {}, {}".format(sys.version.split()[0], sys.executable))
    steady_allocator()
    if options.only in (None, "tls"):
        workdir = tempfile.mkdtemp(prefix="floors-tls-")
        try:
            from compare import parse_size

            for label, on_socket in (("memory BIO", False), ("socket BIO", True)):
                sender, receiver, rate, cipher = measure_tls(parse_size(options.size), workdir, on_socket)
                print("TLS over 127.0.0.1 ({}, {} KiB writes, {}): {:.0f} MB/s; CPU per GB: sender {:.3f} s, "
                      "receiver (Python ssl) {:.3f} s".format(cipher, CHUNK // 1024, label, rate, sender, receiver))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if options.only in (None, "fsync"):
        for name, cpu, wall in measure_fsync(options.dir, options.count):
            print("{} under {}: {:.0f} us CPU, {:.0f} us".format(name, options.dir, cpu, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
