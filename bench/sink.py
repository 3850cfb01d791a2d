"""Loopback ceiling: an HTTP server that reads every body byte and throws it away.

It reads with recv_into on one 4 MiB buffer, so per byte it does only what any server must
(the kernel's copy out of the socket) and answers with the count it read, which the client
checks. Usage: python sink.py PORT
"""
import socket
import sys
import threading

BUFFER = 4 * 1024 * 1024


def handle(conn: socket.socket) -> None:
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    with conn:
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(65536)
            if not data:
                return
            head += data
        head, rest = head.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        received = len(rest)
        while received < length:
            n = conn.recv_into(view, min(BUFFER, length - received))
            if not n:
                return
            received += n
        conn.sendall(b"HTTP/1.1 204 No Content\r\nX-Received: %d\r\n"
                     b"Connection: close\r\n\r\n" % received)


def main() -> None:
    server = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=64)
    print("sink listening", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
