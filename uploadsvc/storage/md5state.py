"""MD5 whose running state can be saved in a row and resumed by another worker.

hashlib cannot export its state, so this drives OpenSSL's MD5 (the code hashlib itself runs)
through ctypes and saves its MD5_CTX as bytes. Where libcrypto is missing or its MD5_CTX is
not the expected one, AVAILABLE is False and uploads are hashed in one pass at completion.
"""
import ctypes
import ctypes.util
import hashlib

_CTX_SIZE = 92  # MD5_CTX: A, B, C, D, Nl, Nh, data[16], num: 23 unsigned 32-bit ints


def _load() -> ctypes.CDLL | None:
    for name in ("libcrypto.so.3", ctypes.util.find_library("crypto")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.MD5_Init.argtypes = [ctypes.c_void_p]
            lib.MD5_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
            lib.MD5_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
            return lib
        except (OSError, AttributeError):
            continue
    return None


_lib = _load()


class Md5State:
    """A resumable MD5: update() with buffers, save() to bytes, resume with Md5State(saved)."""

    def __init__(self, saved: bytes | None = None) -> None:
        if _lib is None:
            raise RuntimeError("libcrypto's MD5 is not available")
        self._ctx = ctypes.create_string_buffer(_CTX_SIZE)
        if saved is None:
            _lib.MD5_Init(self._ctx)
        elif len(saved) != _CTX_SIZE:
            raise ValueError("not a saved MD5 state")
        else:
            ctypes.memmove(self._ctx, saved, _CTX_SIZE)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash more bytes; the GIL is released while OpenSSL works."""
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return
        if view.readonly:
            buffer = ctypes.c_char_p(bytes(view))
        else:
            buffer = (ctypes.c_char * view.nbytes).from_buffer(view)
        _lib.MD5_Update(self._ctx, buffer, view.nbytes)

    @property
    def length(self) -> int:
        """Bytes hashed so far (the context's own 64-bit bit counter, Nl and Nh)."""
        words = memoryview(self._ctx.raw).cast("I")
        return ((words[5] << 32) | words[4]) >> 3

    def save(self) -> bytes:
        return self._ctx.raw

    def hexdigest(self) -> str:
        """The digest of everything hashed, leaving this state unchanged."""
        ctx = ctypes.create_string_buffer(self._ctx.raw, _CTX_SIZE)
        out = ctypes.create_string_buffer(16)
        _lib.MD5_Final(out, ctx)
        return out.raw.hex()


def _works() -> bool:
    """The saved layout round-trips and agrees with hashlib (a check against other ABIs)."""
    if _lib is None:
        return False
    try:
        state = Md5State()
        state.update(bytearray(b"a" * 100))
        resumed = Md5State(state.save())
        resumed.update(bytearray(b"bc"))
        return (resumed.length == 102 and
                resumed.hexdigest() == hashlib.md5(b"a" * 100 + b"bc").hexdigest())
    except (OSError, ValueError, RuntimeError):
        return False


AVAILABLE = _works()
