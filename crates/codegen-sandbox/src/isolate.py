# codegen-sandbox: the trusted side of a harness. Candidate code runs in a
# separate process ("untrusted"), forked before the harness reads the run's
# secret; the harness ("trusted") talks to it over two pipes and reads back
# only plain data (numbers, strings, bytes, None and the builtin
# containers), unpickled without any class lookups, so a returned object
# cannot run code or compare equal to everything in the trusted process.
# The trusted process is not dumpable: the untrusted one cannot read its
# memory or open its descriptors through /proc, and the seccomp filter
# refuses ptrace. Verdicts are lines on the trusted process's stdout that
# begin with the secret; the untrusted process has no descriptor for that
# stdout and never saw the secret.
import builtins as _iso_builtins
import io as _iso_io
import os as _iso_os
import pickle as _iso_pickle
import select as _iso_select
import signal as _iso_signal
import struct as _iso_struct
import sys as _iso_sys

_ISO_MAX_MESSAGE = 64 << 20
_ISO_HARNESS_ERROR = 70
_ISO_PLAIN_CLASSES = {"complex", "set", "frozenset", "bytearray", "range", "slice"}


def _iso_fatal(what):
    _iso_os.write(2, ("codegen-sandbox harness error: %s\n" % (what,)).encode("utf-8", "replace"))
    _iso_os._exit(_ISO_HARNESS_ERROR)


class _IsoPlainUnpickler(_iso_pickle.Unpickler):
    def find_class(self, module, name):
        if module == "builtins" and name in _ISO_PLAIN_CLASSES:
            return getattr(_iso_builtins, name)
        raise _iso_pickle.UnpicklingError("%s.%s is not plain data" % (module, name))

    def persistent_load(self, pid):
        raise _iso_pickle.UnpicklingError("persistent ids are not plain data")


def _iso_plain_loads(data):
    return _IsoPlainUnpickler(_iso_io.BytesIO(data)).load()


def _iso_send(fd, data):
    data = _iso_struct.pack("<Q", len(data)) + data
    view = memoryview(data)
    while view:
        n = _iso_os.write(fd, view)
        view = view[n:]


def _iso_recv_exact(fd, n):
    chunks = []
    while n:
        chunk = _iso_os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _iso_recv(fd):
    head = _iso_recv_exact(fd, 8)
    if head is None:
        return None
    (n,) = _iso_struct.unpack("<Q", head)
    if n > _ISO_MAX_MESSAGE:
        return None
    return _iso_recv_exact(fd, n)


def codegen_protect():
    """Makes this (trusted) process undumpable: same-uid processes can then
    neither ptrace it nor open /proc/PID/mem or /proc/PID/fd."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0)")
    except Exception as e:
        _iso_fatal("cannot make the harness undumpable: %r" % (e,))


_iso_secret = None


def codegen_read_secret():
    """Reads the run's secret from stdin (call after forking the untrusted
    process, so that it never has the secret in its memory)."""
    global _iso_secret
    data = b""
    while not data.endswith(b"\n") and len(data) < 256:
        chunk = _iso_os.read(0, 256)
        if not chunk:
            break
        data += chunk
    secret = data.strip().decode("ascii", "replace")
    if not secret:
        _iso_fatal("no secret on stdin (run the harness with Sandbox::run_harness)")
    _iso_secret = secret
    _iso_os.close(0)


def codegen_verdict(text):
    """Writes one verdict line (a single line of text) for the supervisor."""
    if _iso_secret is None:
        _iso_fatal("verdict before the secret was read")
    line = _iso_secret + " " + text.replace("\n", " ") + "\n"
    _iso_os.write(1, line.encode("utf-8", "replace"))


class UntrustedGone(Exception):
    """The untrusted process died, was killed, or broke the protocol."""


class UntrustedTimeout(Exception):
    """A request took longer than its limit."""


class UntrustedNotPlain(Exception):
    """The untrusted process answered with something that is not plain data."""


class _IsoForeignError(Exception):
    def __init__(self, type_name, text):
        Exception.__init__(self, text)
        self.type_name = type_name
        self.text = text

    def __str__(self):
        return self.text


def _iso_rebuild(module, qualname, args, text):
    cls = getattr(_iso_builtins, qualname, None) if module == "builtins" else None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        if args is not None:
            try:
                e = cls(*args)
                if str(e) == text:
                    return e
            except Exception:
                pass
        try:
            e = cls(text)
            if str(e) == text:
                return e
        except Exception:
            pass
    return _IsoForeignError(qualname, text)


class _IsoTimer(BaseException):
    pass


def _iso_plain(value):
    try:
        data = _iso_pickle.dumps(value, protocol=5)
        _iso_plain_loads(data)
        return data
    except BaseException:
        return None


def _iso_serve(rfd, wfd, prepare, wrap):
    import contextlib

    g = {}
    if prepare is not None:
        prepare()

    def on_timer(signum, frame):
        raise _IsoTimer()

    _iso_signal.signal(_iso_signal.SIGALRM, on_timer)
    while True:
        try:
            raw = _iso_recv(rfd)
        except BaseException:
            raw = None
        if raw is None:
            _iso_os._exit(0)
        msg = _iso_pickle.loads(raw)
        op, timeout = msg[0], msg[-1]
        try:
            ctx = wrap() if wrap is not None else contextlib.nullcontext()
            with ctx:
                if timeout:
                    _iso_signal.setitimer(_iso_signal.ITIMER_REAL, timeout)
                try:
                    if op == "load":
                        _, source, filename, init, check_first, _t = msg
                        if check_first is not None:
                            compile(check_first, filename, "exec")
                        g = dict(init)
                        exec(compile(source, filename, "exec"), g)
                        value = None
                    elif op == "call":
                        _, name, args, kwargs, _t = msg
                        value = g[name](*args, **kwargs)
                    elif op == "eval":
                        _, expr, filename, _t = msg
                        value = eval(compile(expr, filename, "eval"), g)
                    elif op == "exec":
                        _, stmt, filename, _t = msg
                        exec(compile(stmt, filename, "exec"), g)
                        value = None
                    elif op == "names":
                        import types

                        value = {}
                        for k, v in list(g.items()):
                            if k == "__builtins__" or not isinstance(k, str):
                                continue
                            if isinstance(v, types.ModuleType):
                                value[k] = ("module", getattr(v, "__name__", ""))
                            elif callable(v):
                                value[k] = ("callable",)
                            elif _iso_plain(v) is not None:
                                value[k] = ("value", v)
                    else:
                        value = None
                finally:
                    if timeout:
                        _iso_signal.setitimer(_iso_signal.ITIMER_REAL, 0)
            data = _iso_plain(("ok", value))
            if data is None:
                data = _iso_pickle.dumps(("notplain", type(value).__name__), protocol=5)
        except _IsoTimer:
            data = _iso_pickle.dumps(("timeout",), protocol=5)
        except BaseException as e:
            try:
                text = str(e)
            except BaseException:
                text = "<unprintable %s>" % type(e).__name__
            args = getattr(e, "args", ())
            if _iso_plain(args) is None:
                args = None
            try:
                data = _iso_pickle.dumps(
                    ("err", type(e).__module__, type(e).__qualname__, args, text), protocol=5
                )
            except BaseException:
                data = _iso_pickle.dumps(("err", "", "Exception", None, text), protocol=5)
        try:
            _iso_send(wfd, data)
        except BaseException:
            _iso_os._exit(0)


class Untrusted:
    """A forked process that runs candidate code on request.

    prepare(): run in the child before serving (e.g. a reliability guard).
    wrap(): a context manager entered around every request (e.g. swallowing
    stdio)."""

    def __init__(self, prepare=None, wrap=None):
        to_child_r, to_child_w = _iso_os.pipe()
        from_child_r, from_child_w = _iso_os.pipe()
        pid = _iso_os.fork()
        if pid == 0:
            try:
                import fcntl

                r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 200)
                w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 201)
                null = _iso_os.open(_iso_os.devnull, _iso_os.O_RDWR)
                for fd in (0, 1, 2):
                    _iso_os.dup2(null, fd)
                _iso_os.closerange(3, 200)
                _iso_os.closerange(max(r, w) + 1, 1 << 20)
                _iso_serve(r, w, prepare, wrap)
            finally:
                _iso_os._exit(0)
        _iso_os.close(to_child_r)
        _iso_os.close(from_child_w)
        self.pid = pid
        self.w = to_child_w
        self.r = from_child_r
        self.dead = False

    def kill(self):
        if self.dead:
            return
        self.dead = True
        try:
            _iso_os.kill(self.pid, _iso_signal.SIGKILL)
        except OSError:
            pass
        try:
            _iso_os.waitpid(self.pid, 0)
        except OSError:
            pass
        for fd in (self.r, self.w):
            try:
                _iso_os.close(fd)
            except OSError:
                pass

    def _request(self, msg, timeout):
        if self.dead:
            raise UntrustedGone("the candidate's process is gone")
        try:
            _iso_send(self.w, _iso_pickle.dumps(msg, protocol=5))
            if timeout:
                # A backstop: the untrusted side keeps its own timer, which
                # candidate code could swallow.
                ready, _, _ = _iso_select.select([self.r], [], [], timeout + 1.0)
                if not ready:
                    self.kill()
                    raise UntrustedTimeout()
            raw = _iso_recv(self.r)
        except (UntrustedTimeout, UntrustedGone):
            raise
        except OSError:
            self.kill()
            raise UntrustedGone("the candidate's process is gone")
        except BaseException:
            # Interrupted (the harness's own time limit): the protocol is
            # out of step, so the process cannot serve again.
            self.kill()
            raise
        if raw is None:
            self.kill()
            raise UntrustedGone("the candidate's process is gone")
        try:
            reply = _iso_plain_loads(raw)
        except BaseException:
            self.kill()
            raise UntrustedNotPlain("the candidate's process answered with something that is not plain data")
        if not isinstance(reply, tuple) or not reply:
            self.kill()
            raise UntrustedGone("the candidate's process broke the protocol")
        kind = reply[0]
        if kind == "ok" and len(reply) == 2:
            return reply[1]
        if kind == "timeout":
            raise UntrustedTimeout()
        if kind == "notplain" and len(reply) == 2:
            raise UntrustedNotPlain("the result is not plain data (%s)" % (reply[1],))
        if kind == "err" and len(reply) == 5 and all(isinstance(x, str) for x in (reply[1], reply[2], reply[4])):
            args = reply[3] if isinstance(reply[3], tuple) else None
            raise _iso_rebuild(reply[1], reply[2], args, reply[4])
        self.kill()
        raise UntrustedGone("the candidate's process broke the protocol")

    def load(self, source, filename="<string>", init=None, check_first=None, timeout=None):
        """exec(source) in a fresh namespace `init` (a dict of plain data);
        `check_first` is compiled (not run) before, for its SyntaxError."""
        return self._request(("load", source, filename, dict(init or {}), check_first, timeout), timeout)

    def call(self, name, args=(), kwargs=None, timeout=None):
        return self._request(("call", name, tuple(args), dict(kwargs or {}), timeout), timeout)

    def eval(self, expr, filename="<string>", timeout=None):
        return self._request(("eval", expr, filename, timeout), timeout)

    def exec(self, stmt, filename="<string>", timeout=None):
        return self._request(("exec", stmt, filename, timeout), timeout)

    def names(self):
        return self._request(("names", None), None)

    def proxy(self, name):
        def remote(*args, **kwargs):
            return self.call(name, args, kwargs)

        remote.__name__ = name
        remote.__qualname__ = name
        return remote

    def namespace(self):
        """A dict for trusted code: the untrusted module's functions as
        proxies, its standard-library modules imported here, its plain
        values copied."""
        import importlib

        out = {}
        names = self.names()
        if not isinstance(names, dict):
            raise UntrustedGone("the candidate's process broke the protocol")
        stdlib = getattr(_iso_sys, "stdlib_module_names", frozenset())
        for k, d in names.items():
            if not isinstance(k, str) or not isinstance(d, tuple) or not d:
                continue
            if d[0] == "callable":
                out[k] = self.proxy(k)
            elif d[0] == "module" and len(d) == 2 and isinstance(d[1], str):
                if d[1].split(".")[0] in stdlib:
                    try:
                        out[k] = importlib.import_module(d[1])
                    except Exception:
                        pass
            elif d[0] == "value" and len(d) == 2:
                out[k] = d[1]
        return out
# ---- end of codegen-sandbox runtime ----
