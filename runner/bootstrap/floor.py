# tako's trigger floor: a bare interpreter on the bootstrap's transport, for
# `tako bench --floors`. It measures what no tako code can go below: the
# host writes a trigger line into /tako/trigger, a waiting interpreter in
# the container reads it and answers with one end marker on /tako/stdout.
#
# It opens the FIFOs in the directory argv names (/tako in a container) as
# the bootstrap does, says READY on stdout, and then answers every trigger
# line (JSON with a nonce) with the end marker the bootstrap would write for
# a program that exited 0, until the trigger FIFO ends. No preload, no fork,
# no program: nothing but the round trip.
import json
import os
import sys

control = sys.argv[1]
out = os.open(os.path.join(control, "stdout"), os.O_WRONLY)
os.write(out, b"\x1eTAKO-READY\x1e\n")
trigger = os.open(os.path.join(control, "trigger"), os.O_RDONLY)
pending = b""
while True:
    chunk = os.read(trigger, 4096)
    if not chunk:
        break
    pending += chunk
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        nonce = json.loads(line)["nonce"]
        info = json.dumps({"exit": 0, "signal": 0, "exc": "", "msg": ""})
        os.write(out, ("\x1eTAKO-END %s %s\x1e\n" % (nonce, info)).encode())
