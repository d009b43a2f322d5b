"""replproto.py - speaks tldnode's replication protocol in tests: nanomsg sockets (ctypes over
libnanomsg.so.5, as Debian has no Python binding), the authenticated envelope, deltas, and a
man-in-the-middle relay between a primary's PUB socket and a replica, which can drop, capture,
alter and inject messages.

The envelope (replication/msg.h), integers big-endian:
  "TLR1" | type u8 | keyname_len u8 | keyname | sender u64 | seq u64 | time_ms u64 |
  body_len u32 | body | HMAC-SHA256(key, everything before)
"""

import ctypes
import hashlib
import hmac
import os
import struct
import threading
import time

# message types (msg.h)
DELTA, HEARTBEAT, CATCHUP, SNAP_BEGIN, SNAP_NEXT = 1, 2, 3, 4, 5
PUSH_ZONE, PUSH_DELTA, REPORT, STATUS, REPLY = 6, 7, 8, 9, 10
NOTICE = 0xFF

AF_SP, NN_PUB, NN_SUB, NN_REQ = 1, 32, 33, 48
NN_SOL_SOCKET, NN_SNDTIMEO, NN_RCVTIMEO, NN_RCVMAXSIZE = 0, 4, 5, 16
NN_SUB_SUBSCRIBE = 1
NN_REQ_RESEND_IVL = 1
NN_MSG = ctypes.c_size_t(-1).value

_nn = None


def nn():
    """libnanomsg, loaded once."""
    global _nn
    if _nn is None:
        lib = ctypes.CDLL("libnanomsg.so.5", use_errno=True)
        lib.nn_socket.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.nn_bind.argtypes = lib.nn_connect.argtypes = [ctypes.c_int, ctypes.c_char_p]
        lib.nn_setsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                      ctypes.c_size_t]
        lib.nn_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        lib.nn_recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        lib.nn_freemsg.argtypes = [ctypes.c_void_p]
        lib.nn_close.argtypes = [ctypes.c_int]
        lib.nn_strerror.restype = ctypes.c_char_p
        lib.nn_strerror.argtypes = [ctypes.c_int]
        _nn = lib
    return _nn


class Socket:
    """A nanomsg socket; recv() returns None on timeout."""

    def __init__(self, proto):
        self.fd = nn().nn_socket(AF_SP, proto)
        assert self.fd >= 0, "nn_socket failed"
        self.setopt(NN_SOL_SOCKET, NN_RCVMAXSIZE, -1)
        if proto == NN_SUB:
            assert nn().nn_setsockopt(self.fd, NN_SUB, NN_SUB_SUBSCRIBE, b"", 0) == 0
        if proto == NN_REQ:
            self.setopt(NN_REQ, NN_REQ_RESEND_IVL, 3600 * 1000)

    def setopt(self, level, opt, value):
        v = ctypes.c_int(value)
        assert nn().nn_setsockopt(self.fd, level, opt, ctypes.byref(v), ctypes.sizeof(v)) == 0

    def bind(self, url):
        assert nn().nn_bind(self.fd, url.encode()) >= 0, f"cannot bind {url}"
        return self

    def connect(self, url):
        assert nn().nn_connect(self.fd, url.encode()) >= 0, f"cannot connect {url}"
        return self

    def send(self, data):
        return nn().nn_send(self.fd, data, len(data), 0)

    def recv(self, timeout_ms=1000):
        self.setopt(NN_SOL_SOCKET, NN_RCVTIMEO, timeout_ms)
        buf = ctypes.c_void_p()
        n = nn().nn_recv(self.fd, ctypes.byref(buf), NN_MSG, 0)
        if n < 0:
            return None
        data = ctypes.string_at(buf, n)
        nn().nn_freemsg(buf)
        return data

    def close(self):
        if self.fd >= 0:
            nn().nn_close(self.fd)
            self.fd = -1


# ---- keys and envelopes ----

def make_key_file(path, name="test-key", secret=None):
    """Writes a key file (mode 0600); returns (name, secret)."""
    secret = secret if secret is not None else os.urandom(32)
    import base64
    with open(path, "w") as f:
        f.write(f"# replication key for tests\nhmac-sha256:{name}:"
                f"{base64.b64encode(secret).decode()}\n")
    os.chmod(path, 0o600)
    return name, secret


def now_ms():
    return int(time.time() * 1000)


def seal(key_name, secret, mtype, body, sender, seq, time_ms=None):
    """An envelope around body."""
    key_name = key_name.encode() if isinstance(key_name, str) else key_name
    time_ms = now_ms() if time_ms is None else time_ms
    head = (b"TLR1" + bytes([mtype, len(key_name)]) + key_name +
            struct.pack(">QQQI", sender, seq, time_ms, len(body)))
    msg = head + body
    return msg + hmac.new(secret, msg, hashlib.sha256).digest()


def parse(data):
    """The fields of an envelope (no verification), or None."""
    if len(data) < 5 or data[:4] != b"TLR1":
        return None
    if data[4] == NOTICE:
        return {"type": NOTICE, "text": data[5:].decode(errors="replace")}
    nlen = data[5]
    name = data[6:6 + nlen]
    sender, seq, t, blen = struct.unpack(">QQQI", data[6 + nlen:6 + nlen + 28])
    body = data[6 + nlen + 28:6 + nlen + 28 + blen]
    return {"type": data[4], "key": name.decode(errors="replace"), "sender": sender, "seq": seq,
            "time_ms": t, "body": body}


# ---- deltas (replication/delta.h encoding) ----

def wire_name(text):
    """Wire form of an absolute presentation name."""
    out = b""
    for label in text.rstrip(".").split(".") if text not in (".", "") else []:
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def delta_bytes(apex, serial_from, serial_to, ops):
    """ops: (op, owner, type, ttl, rdata) with op 0 = delete, 1 = add."""
    out = bytes([1]) + wire_name(apex) + struct.pack(">III", serial_from, serial_to, len(ops))
    for op, owner, rtype, ttl, rdata in ops:
        out += bytes([op]) + wire_name(owner) + struct.pack(">HIH", rtype, ttl, len(rdata)) + rdata
    return out


def delta_serials(body):
    """(from, to) of an encoded delta."""
    i = 1
    while body[i] != 0:
        i += body[i] + 1
    return struct.unpack(">II", body[i + 1:i + 9])


# ---- a man in the middle between a primary's PUB and a replica ----

class Relay:
    """Subscribes to the primary (upstream PUB URL) and republishes every message on its own PUB
    socket (bind URL), which the replica takes for its --primary. drop(msg) -> True discards a
    message; every message seen is kept in .seen (parsed envelopes with their raw bytes)."""

    def __init__(self, upstream, bind):
        self.sub = Socket(NN_SUB).connect(upstream)
        self.pub = Socket(NN_PUB).bind(bind)
        self.url = bind
        self.drop = None
        self.seen = []
        self.dropped = 0
        self.lock = threading.Lock()
        self.stop_flag = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_flag:
            data = self.sub.recv(100)
            if data is None:
                continue
            env = parse(data)
            with self.lock:
                self.seen.append((env, data))
                drop = self.drop is not None and env is not None and self.drop(env)
                if drop:
                    self.dropped += 1
            if not drop:
                self.pub.send(data)

    def inject(self, data):
        self.pub.send(data)

    def captured(self, mtype):
        with self.lock:
            return [(e, d) for e, d in self.seen if e and e["type"] == mtype]

    def close(self):
        self.stop_flag = True
        self.thread.join(2)
        self.sub.close()
        self.pub.close()


def request(url, key_name, secret, mtype, body, sender=None, seq=1, time_ms=None, timeout_ms=5000,
            raw=None):
    """Sends one request on a REQ socket (raw: exact bytes to send) and returns
    (sent_bytes, reply_envelope or None)."""
    s = Socket(NN_REQ).connect(url)
    try:
        sender = sender if sender is not None else int.from_bytes(os.urandom(8), "big")
        data = raw if raw is not None else seal(key_name, secret, mtype, body, sender, seq,
                                                time_ms)
        s.send(data)
        reply = s.recv(timeout_ms)
        return data, (parse(reply) if reply is not None else None)
    finally:
        s.close()
