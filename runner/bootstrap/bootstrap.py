# tako bootstrap: runs inside every job container, warm or cold.
#
# Its standard output and error are the FIFOs /tako/stdout and /tako/stderr,
# which tako reads on the host: no Docker attach stream on the way. It
# imports what it needs and the job type's preload modules (argv), says READY
# on both, then blocks on the FIFO /tako/trigger for one trigger line (JSON
# with a nonce). It runs /code/main.py as __main__, the way `python3
# /code/main.py < /dev/null` would, and finally writes an END marker carrying
# the nonce, the exit code and the exception type on both streams, after
# flushing them, so the host knows that both streams are complete without
# waiting for the container to exit.
import atexit
import json
import os
import runpy
import sys
import threading
import traceback

MAIN = "/code/main.py"
CONTROL = "/tako"


def _redirect():
    # Opening a FIFO for writing waits until tako has opened it for reading.
    for fd, name in ((1, "stdout"), (2, "stderr")):
        out = os.open(os.path.join(CONTROL, name), os.O_WRONLY)
        os.dup2(out, fd)
        os.close(out)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


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


def _marker(nonce, exit_code, exc_type, message):
    info = json.dumps({"exit": exit_code, "exc": exc_type, "msg": message[:1000]})
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


def main():
    _redirect()
    for name in sys.argv[1:]:
        try:
            __import__(name)
        except Exception as e:
            print("tako: preload %s failed: %r" % (name, e), file=sys.stderr)
    _flush()
    ready = b"\x1eTAKO-READY\x1e\n"
    _write_all(1, ready)
    _write_all(2, ready)

    line = _trigger()
    if not line.strip():
        os._exit(0)
    nonce = json.loads(line)["nonce"]

    sys.argv = [MAIN]
    sys.path[0] = os.path.dirname(MAIN)
    code, exc_type, message = 0, "", ""
    try:
        try:
            runpy.run_path(MAIN, run_name="__main__")
        finally:
            _wait_for_threads()
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException as e:
        code, exc_type, message = 1, type(e).__name__, str(e)
        _report(e)
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    _flush()
    end = _marker(nonce, code, exc_type, message)
    _write_all(1, end)
    _write_all(2, end)
    os._exit(code)


main()
