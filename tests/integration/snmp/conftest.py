"""snmpsim, a real SNMP agent simulator, started per test module on a free UDP port.

It runs from its own venv (``make snmpsim-deps``: Debian's python, since snmpsim drops
root to ``nobody``, who cannot read a Python under root's home). Missing locally, the
tests skip saying so; with ``CI`` set, they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
RESPONDER = REPO / ".snmpsim-venv" / "bin" / "snmpsim-command-responder"
V3_USER = "resmon-v3"
V3_AUTH_KEY = "auth-key-123"
V3_PRIV_KEY = "priv-key-456"

# Community "router": a switch with two interfaces (one down), 64- and 32-bit counters,
# and two CPUs. "router-later": the same device 10 s later, 1,000 bytes more per
# direction. "router-rebooted": sysUpTime went back. "bare": only the system group.
ROUTER = """\
1.3.6.1.2.1.1.1.0|4|test switch
1.3.6.1.2.1.1.3.0|67|{uptime}
1.3.6.1.2.1.2.2.1.8.1|2|1
1.3.6.1.2.1.2.2.1.8.2|2|2
1.3.6.1.2.1.2.2.1.10.1|65|{in32}
1.3.6.1.2.1.2.2.1.10.2|65|{in32}
1.3.6.1.2.1.2.2.1.16.1|65|{out32}
1.3.6.1.2.1.2.2.1.16.2|65|{out32}
1.3.6.1.2.1.25.3.3.1.2.1|2|30
1.3.6.1.2.1.25.3.3.1.2.2|2|50
1.3.6.1.2.1.31.1.1.1.6.1|70|{in64}
1.3.6.1.2.1.31.1.1.1.10.1|70|{out64}
"""
DATA = {
    "router": ROUTER.format(uptime=500000, in32=4294967000, out32=100, in64=10000, out64=20000),
    "router-later": ROUTER.format(uptime=501000, in32=704, out32=1100, in64=11000, out64=21000),
    "router-rebooted": ROUTER.format(uptime=1200, in32=10, out32=10, in64=10, out64=10),
    "bare": "1.3.6.1.2.1.1.1.0|4|bare agent\n1.3.6.1.2.1.1.3.0|67|4242\n",
}


@dataclass
class Agent:
    port: int


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def snmp_agent() -> Iterator[Agent]:
    if not RESPONDER.exists():
        reason = f"snmpsim is not installed ({RESPONDER}); run `make snmpsim-deps`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="resmon-snmpsim-"))
    data, cache = root / "data", root / "cache"
    data.mkdir()
    cache.mkdir()
    for name, text in DATA.items():
        (data / f"{name}.snmprec").write_text(text)
        (data / f"{name}.snmprec").chmod(0o644)
    root.chmod(0o755)
    data.chmod(0o755)
    cache.chmod(0o777)  # snmpsim writes its indices here after dropping to nobody
    port = _free_udp_port()
    command = [
        str(RESPONDER),
        f"--data-dir={data}",
        f"--cache-dir={cache}",
        f"--agent-udpv4-endpoint=127.0.0.1:{port}",
        "--process-user=nobody",
        "--process-group=nogroup",
        f"--v3-user={V3_USER}",
        f"--v3-auth-key={V3_AUTH_KEY}",
        "--v3-auth-proto=SHA",
        f"--v3-priv-key={V3_PRIV_KEY}",
        "--v3-priv-proto=AES",
    ]
    log = (root / "snmpsim.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "Listening at" not in (root / "snmpsim.log").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("snmpsim did not start:\n" + (root / "snmpsim.log").read_text()[-2000:])
            time.sleep(0.1)
        yield Agent(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
