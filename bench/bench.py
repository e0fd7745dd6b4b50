"""Privia's benchmark: run it with bench/run (add --quick for a short run).

It starts Privia on a fresh database, pinned to core 0, and drives it from
core 1: wrk for plain HTTP, the asyncio clients in clients.py for SSE and
WebSocket. Each scenario prints requests/s, p50 and p99 latency, errors, the
server's CPU milliseconds per request and its memory, with the ratio to a bare
Starlette endpoint served the same way (bench/ceiling.py) and to the reference
backend's figures. It prints figures; it never fails on one.
"""

import argparse
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import partial
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import uvloop

import clients

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
SERVER_CORE, LOAD_CORE = 0, 1
PASSWORD = "benchmark-password"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The reference backend's figures for the same scenarios (issue 6), in req/s.
REFERENCE = {
    "health": 8300,
    "me": 1550,
    "list": 98,
    "get": 565,
    "query": 250,
    "stream": 135,
    "ws": 190,
}


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50: float | None
    p99: float | None
    errors: int
    cpu_ms: float | None = None
    rss_mib: float | None = None
    reference: str | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# The servers


class Server:
    """A server process pinned to SERVER_CORE, its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], workdir: Path, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.env = os.environ | {"PORT": str(self.port), "HOST": HOST} | env
        self.argv = ["taskset", "-c", str(SERVER_CORE), sys.executable, *argv]
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise SystemExit(f"{self.name} did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / CLOCK_TICKS

    def rss_mib(self) -> float:
        """The server's resident memory now."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# Where py-spy writes a flame graph of each scenario, when --profile asks for it.
PROFILE_DIR: Path | None = None


def measured(server: Server, run, *args) -> Result:
    """Run one scenario and add the server's CPU per request and memory to it."""
    profiler = start_profiler(server, args[0]) if PROFILE_DIR else None
    before = server.cpu_seconds()
    try:
        result = run(*args)
    finally:
        if profiler:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
    used = server.cpu_seconds() - before
    if result.requests:
        result.cpu_ms = used * 1000 / result.requests
    result.rss_mib = server.rss_mib()
    return result


def start_profiler(server: Server, scenario: str) -> subprocess.Popen:
    """py-spy sampling the server until interrupted; it then writes an SVG."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{server.name} {scenario}".lower()).strip("-")
    py_spy = Path(sys.executable).with_name("py-spy")
    argv = ["taskset", "-c", str(LOAD_CORE), str(py_spy), "record", "--nonblocking"]
    argv += ["-p", str(server.process.pid), "-o", str(PROFILE_DIR / f"{slug}.svg")]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    profiler = subprocess.Popen(argv, **quiet)
    time.sleep(0.5)
    return profiler


# wrk for plain HTTP


WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(name: str, output: str, seconds: float) -> Result:
    """Pull requests, latency percentiles and errors out of `wrk --latency` output."""

    def latency(percent: str) -> float | None:
        found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        return float(found.group(1)) * WRK_UNITS[found.group(2)] if found else None

    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = 0
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if found:
        errors += int(found.group(1))
    found = re.search(r"Socket errors: (.*)", output)
    if found:
        errors += sum(int(n) for n in re.findall(r"\d+", found.group(1)))
    return Result(name, requests, seconds, latency("50"), latency("99"), errors)


def wrk_command(
    url: str, seconds: float, connections: int, token: str | None, body: dict | None
) -> tuple[list[str], dict]:
    argv = ["taskset", "-c", str(LOAD_CORE), "wrk", "--latency", "-t1"]
    argv += ["-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s"]
    env = dict(os.environ)
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        argv += ["-s", str(HERE / "post.lua")]
        env["BODY"] = json.dumps(body)
    return argv + [url], env


def run_wrk(
    name: str,
    url: str,
    seconds: float,
    connections: int = 16,
    token: str | None = None,
    body: dict | None = None,
) -> Result:
    argv, env = wrk_command(url, seconds, connections, token, body)
    output = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return parse_wrk(name, output.stdout, seconds)


def run_wrk_beside(
    name: str, url: str, seconds: float, token: str, beside: tuple
) -> Result:
    """Run wrk on url while a second wrk runs `beside` (url, connections, body)."""
    other_url, other_connections, other_body = beside
    argv, env = wrk_command(other_url, seconds + 1, other_connections, None, other_body)
    other = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        result = run_wrk(name, url, seconds, token=token)
    finally:
        output, _ = other.communicate()
    logins = parse_wrk("logins", output, seconds + 1)
    result.name += f" ({logins.rate:.1f} logins/s beside it)"
    return result


# The asyncio clients for SSE and WebSocket


def percentile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]


def timings_result(name: str, timings: clients.Timings, seconds: float) -> Result:
    return Result(
        name,
        len(timings.latencies),
        seconds,
        percentile(timings.latencies, 50),
        percentile(timings.latencies, 99),
        timings.errors,
    )


def run_streams(
    name: str,
    server: Server,
    token: str,
    clients_count: int,
    questions: int,
    seconds: float,
) -> tuple[Result, clients.Timings]:
    """`clients_count` SSE clients, each asking up to `questions` in turn."""
    timings = clients.Timings()

    async def load() -> None:
        deadline = time.perf_counter() + seconds
        await clients.gather_counting_failures(
            [
                clients.post_streams(
                    HOST, server.port, token, questions, deadline, timings
                )
                for _ in range(clients_count)
            ],
            timings,
        )

    started = time.perf_counter()
    uvloop.run(load())
    return timings_result(name, timings, time.perf_counter() - started), timings


def run_sockets(
    name: str,
    server: Server,
    token: str,
    sockets: int,
    questions: int,
    seconds: float,
    repeat: bool = True,
) -> tuple[Result, clients.Timings]:
    """`sockets` WebSockets at once, each asking `questions` in turn, then (with
    `repeat`) reopened to ask again until `seconds` have passed."""
    timings = clients.Timings()
    url = f"ws://{HOST}:{server.port}/api/ws/chat?token={token}"

    async def load() -> None:
        deadline = time.perf_counter() + seconds
        await clients.gather_counting_failures(
            [
                clients.ask_over_sockets(url, questions, deadline, timings, repeat)
                for _ in range(sockets)
            ],
            timings,
        )

    started = time.perf_counter()
    uvloop.run(load())
    return timings_result(name, timings, time.perf_counter() - started), timings


class HealthProbe:
    """GET /api/health every 50 ms from a process of its own while a load runs."""

    def __init__(self, server: Server) -> None:
        argv = ["taskset", "-c", str(LOAD_CORE), sys.executable]
        argv += [str(HERE / "clients.py"), HOST, str(server.port), "0.05"]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    def finish(self) -> tuple[list[float], int]:
        """Stop the probe; its latencies and how many answers were not 200."""
        self.process.terminate()
        output, _ = self.process.communicate()
        lines = [line.split() for line in output.splitlines() if line.strip()]
        return [float(line[0]) for line in lines], sum(len(line) > 1 for line in lines)


# Seeding


class Api:
    """The few API calls the seeding needs."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=60)

    def user(self, email: str) -> str:
        """Sign up `email` and return its token."""
        body = {"email": email, "password": PASSWORD}
        self.http.post("/api/auth/signup", json=body).raise_for_status()
        response = self.http.post("/api/auth/login", json=body)
        response.raise_for_status()
        return response.json()["access_token"]

    def ask(self, token: str, conversation_id: str | None = None) -> str:
        """Ask a question; return the conversation it went to."""
        body = {"question": "Seed question", "conversation_id": conversation_id}
        response = self.http.post(
            "/api/query", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()
        return response.json()["conversation_id"]


def seed_crowd(database: Path, conversations: int, messages_each: int) -> None:
    """Write other users' conversations straight into SQLite, to grow the database."""
    conn = sqlite3.connect(database)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with conn:
        for user in range(conversations // 100):
            user_id = f"crowd-{user}"
            conn.execute(
                "INSERT INTO users (id, email) VALUES (?, ?)",
                (user_id, f"{user_id}@example.com"),
            )
            for _ in range(100):
                conversation_id = str(uuid.uuid4())
                stamp = (start + timedelta(seconds=user)).isoformat()
                conn.execute(
                    """
                    INSERT INTO conversations
                        (id, user_id, title, status, created_at, updated_at)
                    VALUES (?, ?, 'Crowd', 'active', ?, ?)
                    """,
                    (conversation_id, user_id, stamp, stamp),
                )
                conn.executemany(
                    """
                    INSERT INTO messages (id, conversation_id, role, content, timestamp)
                    VALUES (?, ?, ?, 'A message of a crowded database.', ?)
                    """,
                    [
                        (
                            str(uuid.uuid4()),
                            conversation_id,
                            "user" if n % 2 == 0 else "assistant",
                            (start + timedelta(seconds=n)).isoformat(),
                        )
                        for n in range(messages_each)
                    ],
                )
    # Measure the database at rest, not one whose reads must first look
    # through a write-ahead log holding a million fresh rows.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def count_stored(database: Path, user: str) -> dict:
    """How many questions and non-empty replies the user's conversations hold."""
    conn = sqlite3.connect(database)
    rows = conn.execute(
        """
        SELECT m.role, COUNT(*)
        FROM messages AS m
        JOIN conversations AS c ON c.id = m.conversation_id
        JOIN users AS u ON u.id = c.user_id
        WHERE u.email = ? AND m.content != ''
        GROUP BY m.role
        """,
        (user,),
    ).fetchall()
    conn.close()
    return dict(rows)


# Printing


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    sys.stdout.flush()


def print_results(title: str, results: list[Result], ceiling: float) -> None:
    header = ["scenario", "req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req"]
    header += ["RSS MiB", "x ceiling", "reference", "x reference"]
    rows = []
    for result in results:
        reference = REFERENCE.get(result.reference or "")
        rows.append(
            [
                result.name,
                f"{result.rate:,.0f}",
                ms(result.p50),
                ms(result.p99),
                result.errors,
                "-" if result.cpu_ms is None else f"{result.cpu_ms:.2f}",
                "-" if result.rss_mib is None else f"{result.rss_mib:.1f}",
                f"{result.rate / ceiling:.2f}",
                f"{reference:,}" if reference else "-",
                f"{result.rate / reference:.1f}" if reference else "-",
            ]
        )
    print_table(title, header, rows)


# The run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="short runs, smaller crowds"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write a py-spy flame graph of the server for each scenario into DIR",
    )
    options = parser.parse_args()
    if options.profile:
        global PROFILE_DIR
        PROFILE_DIR = options.profile.resolve()
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        print("Profiling: py-spy takes CPU too, so these figures are not comparable.")
    os.sched_setaffinity(0, {LOAD_CORE})

    seconds = 3 if options.quick else 8
    crowd = 200 if options.quick else 1000
    big_conversations = 1000 if options.quick else 10_000
    passes = 1 if options.quick else 2
    print(
        f"Privia benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{'quick' if options.quick else 'full'} run: server on core {SERVER_CORE}, "
        f"load on core {LOAD_CORE}, {seconds}s per scenario."
    )

    with tempfile.TemporaryDirectory(prefix="privia-bench-") as tmp:
        workdir = Path(tmp)
        ceiling = run_ceiling(workdir, seconds)
        run_privia(workdir, seconds, ceiling, big_conversations, passes)
        run_crowds(workdir, crowd)


def run_ceiling(workdir: Path, seconds: float) -> float:
    server = Server("ceiling", [str(HERE / "ceiling.py")], workdir).start()
    try:
        name = "ceiling: bare Starlette"
        result = http_scenario(server, name, "/api/health", seconds)
    finally:
        server.stop()
    print_results("The ceiling", [result], result.rate)
    return result.rate


def http_scenario(
    server: Server,
    name: str,
    path: str,
    seconds: float,
    token: str | None = None,
    body: dict | None = None,
    reference: str | None = None,
) -> Result:
    """One wrk scenario against the server, 16 connections, measured."""
    url = f"{server.url}{path}"
    result = measured(server, run_wrk, name, url, seconds, 16, token, body)
    result.reference = reference
    return result


def privia_env(workdir: Path, name: str, **env: str) -> dict:
    return {
        "PRIVIA_DATABASE": str(workdir / name / "privia.db"),
        "PRIVIA_SECRET_KEY": "a-benchmark-signing-key-of-more-than-32-bytes",
        "PRIVIA_CONVERSATION_COOLDOWN_SECONDS": "0",
        # The scenarios ask hundreds of questions a second as one user; the
        # per-user limit would measure its own 429s instead of Privia.
        "PRIVIA_QUESTIONS_PER_MINUTE": "0",
    } | env


@dataclass
class Seeded:
    """The users and conversations the scenarios read and write."""

    reader: str  # token of a user with 50 conversations
    big: str  # one of them, with 100 messages
    talker: str  # token of the user who asks the questions
    talk: str  # the talker's conversation


def seed(server: Server) -> Seeded:
    api = Api(server)
    reader = api.user("reader@example.com")
    for _ in range(49):
        api.ask(reader)
    big = api.ask(reader)
    for _ in range(49):
        api.ask(reader, big)
    talker = api.user("talker@example.com")
    return Seeded(reader, big, talker, api.ask(talker))


def run_privia(
    workdir: Path, seconds: float, ceiling: float, big_conversations: int, passes: int
) -> None:
    env = privia_env(workdir, "privia")
    server = Server("privia", ["privia.py"], workdir, **env)
    server.start()
    memory = [("at start", server.rss_mib())]
    try:
        seeded = seed(server)
        for number in range(1, passes + 1):
            results = privia_scenarios(server, seconds, seeded)
            print_results(f"Privia, pass {number} of {passes}", results, ceiling)
            memory.append((f"after pass {number}", server.rss_mib()))

        started = time.perf_counter()
        seed_crowd(Path(env["PRIVIA_DATABASE"]), big_conversations, 100)
        print(
            f"\nSeeded {big_conversations:,} conversations and "
            f"{big_conversations * 100:,} messages in "
            f"{time.perf_counter() - started:.0f}s."
        )
        big_path = f"/api/conversations/{seeded.big}"
        results = [
            http_scenario(
                server,
                "list, 50 conversations, large db",
                "/api/conversations",
                seconds,
                seeded.reader,
                reference="list",
            ),
            http_scenario(
                server,
                "get, 100 messages, large db",
                big_path,
                seconds,
                seeded.reader,
                reference="get",
            ),
        ]
        print_results("Privia on the large database", results, ceiling)
        memory.append(("after the large database", server.rss_mib()))
    finally:
        server.stop()
    rows = [[when, f"{mib:.1f}"] for when, mib in memory]
    print_table("Privia's memory", ["when", "RSS MiB"], rows)


def privia_scenarios(server: Server, seconds: float, seeded: Seeded) -> list[Result]:
    reader, talker = seeded.reader, seeded.talker
    question = {"question": "How fast is Privia?", "conversation_id": seeded.talk}
    results = [
        http_scenario(
            server, "GET /api/health", "/api/health", seconds, reference="health"
        ),
        http_scenario(
            server, "GET /api/auth/me", "/api/auth/me", seconds, reader, reference="me"
        ),
        http_scenario(
            server,
            "list, 50 conversations",
            "/api/conversations",
            seconds,
            reader,
            reference="list",
        ),
        http_scenario(
            server,
            "get, 100 messages",
            f"/api/conversations/{seeded.big}",
            seconds,
            reader,
            reference="get",
        ),
        http_scenario(
            server,
            "POST /api/query, 16 writers",
            "/api/query",
            seconds,
            talker,
            question,
            "query",
        ),
    ]

    first_chunks = []
    for name, run, clients_count, questions, reference in (
        ("POST /api/stream, 16 at once", run_streams, 16, 10**6, "stream"),
        ("WebSocket, 8 sockets x 5 questions, again", run_sockets, 8, 5, "ws"),
        ("WebSocket, 16 sockets x 5 questions, again", run_sockets, 16, 5, None),
    ):
        result, timings = measured_pair(
            server, run, name, server, talker, clients_count, questions, seconds
        )
        result.reference = reference
        results.append(result)
        first = timings.first_chunks
        first_chunks.append(
            [name, ms(percentile(first, 50)), ms(percentile(first, 99))]
        )

    login = {"email": "talker@example.com", "password": PASSWORD}
    results.append(
        measured(
            server,
            run_wrk_beside,
            "GET /api/auth/me, 4 clients logging in",
            f"{server.url}/api/auth/me",
            seconds,
            reader,
            (f"{server.url}/api/auth/login", 4, login),
        )
    )
    print_table("Time to first chunk", ["scenario", "p50 ms", "p99 ms"], first_chunks)
    return results


def measured_pair(server: Server, run, *args) -> tuple[Result, clients.Timings]:
    """`measured` for the clients that also return their timings."""
    kept = []

    def only_result(*inner):
        result, timings = run(*inner)
        kept.append(timings)
        return result

    return measured(server, only_result, *args), kept[0]


def run_crowds(workdir: Path, crowd: int) -> None:
    """Many paced replies at once: every one must be stored, health must answer."""
    env = privia_env(workdir, "paced", PRIVIA_STUB_DELAY_MS="50")
    server = Server("paced", ["privia.py"], workdir, **env).start()
    database = Path(env["PRIVIA_DATABASE"])
    rows = []
    try:
        api = Api(server)
        for kind, email, run, questions in (
            ("SSE streams", "sse@example.com", run_streams, 1),
            ("WebSockets", "ws@example.com", partial(run_sockets, repeat=False), 5),
        ):
            token = api.user(email)
            probe = HealthProbe(server)
            time.sleep(0.3)
            result, timings = measured_pair(
                server,
                run,
                f"{crowd} {kind} x {questions}",
                server,
                token,
                crowd,
                questions,
                600,
            )
            health, failed = probe.finish()
            stored = count_stored(database, email)
            rows.append(
                [
                    result.name,
                    f"{result.seconds:.1f}",
                    f"{result.requests:,}",
                    result.errors,
                    f"{stored.get('user', 0):,} / {stored.get('assistant', 0):,}",
                    ms(percentile(timings.first_chunks, 99)),
                    ms(percentile(health, 50)),
                    ms(percentile(health, 99)),
                    ms(max(health) if health else None),
                    failed,
                    f"{result.cpu_ms:.2f}",
                    f"{result.rss_mib:.1f}",
                ]
            )
    finally:
        server.stop()
    print_table(
        "Crowds, the stub paced at 50 ms per chunk",
        [
            "scenario",
            "seconds",
            "replies done",
            "errors",
            "stored questions / replies",
            "first chunk p99 ms",
            "health p50 ms",
            "health p99 ms",
            "health max ms",
            "health not 200",
            "CPU ms/reply",
            "RSS MiB",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
