"""An HTTP/2-only origin for the edge tests, on the `h2` library (python3-h2):
TLS offering only "h2" with ALPN, or cleartext with prior knowledge. Every
request is answered 200 with JSON of what it saw (method, path, body,
headers, "protocol": "HTTP/2") and an X-Conn header naming its connection."""

import json
import socket
import ssl
import threading

import h2.config
import h2.connection
import h2.events


class H2Origin:
    def __init__(self, tls_files=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.ctx = None
        if tls_files:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls_files)
            self.ctx.set_alpn_protocols(["h2"])
        self.connections = 0
        self.requests = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self._serve, args=(conn, n), daemon=True).start()

    def _serve(self, conn, n):
        try:
            if self.ctx:
                conn = self.ctx.wrap_socket(conn, server_side=True)
            h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            h2c.initiate_connection()
            conn.sendall(h2c.data_to_send())
            streams = {}
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                for ev in h2c.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        streams[ev.stream_id] = {"headers": ev.headers, "body": b""}
                    elif isinstance(ev, h2.events.DataReceived):
                        streams[ev.stream_id]["body"] += ev.data
                        h2c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        self._answer(h2c, ev.stream_id, streams.pop(ev.stream_id), n)
                conn.sendall(h2c.data_to_send())
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            return
        finally:
            conn.close()

    def _answer(self, h2c, stream_id, req, n):
        with self.lock:
            self.requests += 1
        fields = {}
        for k, v in req["headers"]:
            k = k.decode() if isinstance(k, bytes) else k
            v = v.decode() if isinstance(v, bytes) else v
            fields[k] = v
        payload = json.dumps({"method": fields.get(":method"), "path": fields.get(":path"),
                              "authority": fields.get(":authority"),
                              "body": req["body"].decode(errors="replace"),
                              "headers": {k: v for k, v in fields.items()
                                          if not k.startswith(":")},
                              "protocol": "HTTP/2"}).encode()
        h2c.send_headers(stream_id, [(":status", "200"), ("content-length", str(len(payload))),
                                     ("content-type", "application/json"),
                                     ("x-origin", "h2"), ("x-conn", str(n))])
        h2c.send_data(stream_id, payload, end_stream=True)

    def close(self):
        self.sock.close()
