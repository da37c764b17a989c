# tako bootstrap: runs inside every job container, warm or cold.
#
# Its standard output and error are the FIFOs /tako/stdout and /tako/stderr,
# which tako reads on the host: no Docker attach stream on the way. It
# imports what it needs and the job type's preload modules (argv), then
# splits in two:
#
# - the program's process, forked now so that it starts with every module
#   imported, warms itself up, waits on a pipe and then runs /code/main.py
#   as __main__, the way `python3 /code/main.py < /dev/null` would;
# - the supervisor (this process) makes itself undumpable, says READY on
#   both streams, reads one trigger line (JSON with a nonce, and the
#   program's source when it is small) from the FIFO /tako/trigger, lets
#   the program go, waits for it, stops every process it left behind, and
#   writes an END marker carrying the nonce and the exit status on both
#   streams.
#
# The program never holds the nonce: it was forked before the trigger
# arrived, the trigger is consumed before the program starts, and the
# supervisor's memory is closed to it (PR_SET_DUMPABLE 0; ptrace is refused
# by tako's seccomp profile). So the program cannot end its own output with
# a forged marker, and the exit status in the marker is the kernel's, from
# waitpid, not what the program says. Everything the program started is
# killed before the marker, so /output and the streams are final when tako
# reads them.
import gc
import io
import json
import os
import signal
import sys
import threading
import traceback

MAIN = "/code/main.py"
CONTROL = "/tako"

# Signals the supervisor passes on to the program: what `docker kill -s` or
# the container's init would deliver to the program if it ran alone.
FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
             signal.SIGUSR1, signal.SIGUSR2)

# The most the program's report of its exception may take.
MAX_REPORT = 4096


class _Stream(io.FileIO):
    # A standard stream's file that skips empty writes. gVisor answers a
    # zero-length write to a host FIFO with EINVAL (Linux does nothing),
    # and the interpreter makes them: print("", end=""), and its traceback
    # printer, which then loses sys.stderr and dumps the exception object
    # instead of its traceback.
    def write(self, b):
        if not len(b):
            return 0
        return super().write(b)


def _text(fd, errors):
    # What `python3 -u` makes of a standard stream, over _Stream.
    raw = _Stream(fd, "w", closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", errors=errors, write_through=True)


def _redirect():
    # Opening a FIFO for writing waits until tako has opened it for reading.
    for fd, name in ((1, "stdout"), (2, "stderr")):
        out = os.open(os.path.join(CONTROL, name), os.O_WRONLY)
        os.dup2(out, fd)
        os.close(out)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = sys.__stdout__ = _text(1, "strict")
    sys.stderr = sys.__stderr__ = _text(2, "backslashreplace")


def _trigger():
    fd = os.open(os.path.join(CONTROL, "trigger"), os.O_RDONLY)
    try:
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data


def _marker(nonce, exit_code, sig, exc_type, message):
    info = json.dumps({"exit": exit_code, "signal": sig, "exc": exc_type, "msg": message[:1000]})
    return ("\x1eTAKO-END %s %s\x1e\n" % (nonce, info)).encode()


def _write_all(fd, data):
    while data:
        try:
            n = os.write(fd, data)
        except InterruptedError:
            continue
        except OSError:
            return
        data = data[n:]


def _flush():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def _prctl(option, arg, name):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(%s)" % name)


def _undumpable():
    # No process of the program's uid may read this one's memory through
    # /proc/<pid>/mem or process_vm_readv, nor its /proc/<pid>/fd.
    _prctl(4, 0, "PR_SET_DUMPABLE")


def _subreaper():
    # Make every process the program leaves behind this process's child
    # when its parent ends, instead of init's: then "no children left"
    # means nothing of the program is left. False when the kernel refuses.
    try:
        _prctl(36, 1, "PR_SET_CHILD_SUBREAPER")
        return True
    except OSError:
        return False


def _left_behind(subreaper):
    # Whether a process of the program may still exist. Under a subreaper
    # every one of them is a child of this process, exited or not.
    if not subreaper:
        return True
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


def _exit_code(code):
    # Same rules as the interpreter's handling of an uncaught SystemExit.
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def _report(exc):
    # Print the traceback from the user's first frame on, as `python3
    # main.py` would, through sys.excepthook so a user's hook still runs.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != MAIN:
        tb = tb.tb_next
    # The hook prints the exception's own __traceback__, so trim that too.
    exc.__traceback__ = tb
    try:
        sys.excepthook(type(exc), exc, tb)
    except Exception:
        traceback.print_exception(type(exc), exc, tb)


def _wait_for_threads():
    main = threading.main_thread()
    for t in threading.enumerate():
        if t is not main and not t.daemon:
            t.join()


def _warm_up():
    # The program's process shares its memory with the supervisor until it
    # writes to it, and the first compile and exec after the fork write to
    # many pages: the copy-on-write faults cost 2 ms under gVisor. Take
    # them now, before the trigger, on a throwaway program.
    warm = compile("_ = [str(i) for i in range(64)]\nprint(end='')", "<tako-warm-up>", "exec")
    exec(warm, {"__name__": "__tako_warm_up__", "__builtins__": __builtins__})


def _run_main(source):
    # What `python3 /code/main.py` does: compile the file and run it as the
    # module __main__. Cheaper than runpy.run_path, whose first call imports
    # half a dozen modules. The source came with the trigger when it is
    # small: reading a file the host has just written costs a gVisor
    # sandbox a round trip to its gofer. /code/main.py holds the same
    # source, for tracebacks and for the program itself.
    import types
    if source is None:
        with open(MAIN, "rb") as f:
            source = f.read()
    code = compile(source, MAIN, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__file__ = MAIN
    main.__builtins__ = __builtins__
    main.__spec__ = None
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _read_all(fd):
    data = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return data
        data += chunk


def _program(go, report):
    # The program's process: warm up, wait for the go, run the program,
    # report how it ended on the report pipe (a hint: the supervisor's
    # waitpid decides the exit status), and exit with its code. The go is
    # b"f" (run /code/main.py) or b"s" and the program's source.
    try:
        _warm_up()
    except Exception:
        pass
    go_message = _read_all(go)
    if not go_message:
        os._exit(0)  # the supervisor is gone: nothing to run
    os.close(go)
    source = go_message[1:] if go_message[:1] == b"s" else None
    sys.argv = [MAIN]
    sys.path[0] = os.path.dirname(MAIN)
    code, exc_type, message = 0, "", ""
    try:
        try:
            _run_main(source)
        finally:
            _wait_for_threads()
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException as e:
        code, exc_type, message = 1, type(e).__name__, str(e)
        _report(e)
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:
        pass
    _flush()
    _write_all(report, json.dumps({"exc": exc_type, "msg": message[:1000]}).encode())
    os._exit(code)


def _forward(pid, signum):
    try:
        os.kill(pid, signum)
    except OSError:
        pass  # it has ended


def _read_report(fd):
    # The program wrote its report before it exited, so it is in the pipe
    # now; processes it left behind may still hold the pipe open, so read
    # without waiting for its end.
    os.set_blocking(fd, False)
    data = b""
    try:
        while len(data) < MAX_REPORT:
            chunk = os.read(fd, MAX_REPORT)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    try:
        report = json.loads(data[:MAX_REPORT].decode("utf-8", "replace"))
        return str(report.get("exc", ""))[:200], str(report.get("msg", ""))
    except Exception:
        return "", ""


def main():
    _redirect()
    for name in sys.argv[1:]:
        try:
            __import__(name)
        except Exception as e:
            print("tako: preload %s failed: %r" % (name, e), file=sys.stderr)
    _flush()

    go_r, go_w = os.pipe()
    report_r, report_w = os.pipe()
    # What exists now stays shared with the program's process: its
    # collections then never walk (and copy) the supervisor's objects.
    gc.freeze()
    subreaper = _subreaper()
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.close(report_r)
        _program(go_r, report_w)
    os.close(go_r)
    os.close(report_w)
    # From now on a signal meant for the program (the container's init
    # passes on what it gets) goes to it, never ends the supervisor.
    for s in FORWARDED:
        signal.signal(s, lambda signum, frame: _forward(pid, signum))
    _undumpable()

    ready = b"\x1eTAKO-READY\x1e\n"
    _write_all(1, ready)
    _write_all(2, ready)
    line = _trigger()
    if not line.strip():
        os.kill(pid, signal.SIGKILL)
        os._exit(0)
    trigger = json.loads(line)
    nonce = trigger["nonce"]
    source = trigger.get("source")
    go = b"f" if source is None else b"s" + source.encode("utf-8")
    _write_all(go_w, go)
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    code = 128 + sig if sig else os.WEXITSTATUS(status)
    exc_type, message = _read_report(report_r)
    # Stop whatever the program left running (daemons, detached children):
    # every process this one may signal but init and itself. A gVisor
    # sandbox takes half a millisecond to look, so only when there may be
    # one.
    if _left_behind(subreaper):
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    end = _marker(nonce, code, sig, exc_type, message)
    _write_all(1, end)
    _write_all(2, end)
    os._exit(code)


main()
