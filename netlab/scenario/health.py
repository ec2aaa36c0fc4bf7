"""A service's ``healthcheck:``, read as the HTTP GET netlab makes for it.

Keys as the compose spec writes them (compose-spec ``05-services.md``,
``healthcheck``): ``test``, ``interval``, ``timeout``, ``retries``,
``start_period``, ``disable``. ``test`` is a string (the ``CMD-SHELL`` form)
or a list whose first item is ``NONE``, ``CMD`` or ``CMD-SHELL``; ``["NONE"]``
and ``disable: true`` mean no check (docker/cli ``cli/compose/convert/service.go``,
``convertHealthcheck``, refuses both with a test).

netlab runs no command in a task: it makes the request the test would make,
from inside the task's network namespace. So the only tests accepted are an
HTTP check of the task itself: ``curl`` with ``-f``/``--fail`` (without it
curl succeeds on a 500) or ``wget``, maybe followed by ``|| exit 1``, naming
``http://localhost[:PORT]/PATH`` or ``http://127.0.0.1[:PORT]/PATH``; the
port (80 by default) must be one the task app listens on. Durations and
retries of 0 take the Engine's defaults, as ``timeoutWithDefault`` and
``handleProbeResult`` do (moby ``daemon/health.go``): interval and timeout
30s, retries 3; the Engine refuses an interval, timeout or start period
under 1ms (moby ``daemon/container.go``, ``validateHealthCheck``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from types import MappingProxyType

from netlab.model import COUNT_MAX, DURATION_MAX, HealthCheck
from netlab.scenario.fields import (
    check_keys, expect_mapping, kind_of, read_duration, read_int,
)
from netlab.scenario.issues import IssueLog, field, item
from netlab.scenario.yamltree import Mapping, Scalar, Sequence, Value

HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period", "disable")
HEALTH_NOT_MODELLED = MappingProxyType({
    "start_interval": "start_interval is not modelled: netlab checks every interval from the "
                      "start; remove it",
})
_DEFAULTS = HealthCheck((), 80, "/")
_MIN_PERIOD = 0.001     # the Engine's 1ms floor (validateHealthCheck)

# A path of printable ASCII without a fragment (#): what the GET's request line carries.
_URL = re.compile(r"http://(localhost|127\.0\.0\.1)(?::([0-9]{1,5}))?(/[\x21\x22\x24-\x7e]*)?")
TEST_MAX = 4096         # characters in all of a test's items
_EXIT_1 = ["||", "exit", "1"]

# The options netlab reads (each other option is refused by name): flags without
# a value, options taking one (``-m 5``, ``-m5``, ``--max-time=5``).
_CURL_FLAGS = frozenset("fsSLk")
_CURL_VALUED = frozenset("mo")
_CURL_LONG_FLAGS = frozenset({"--fail", "--fail-with-body", "--silent", "--show-error",
                              "--location", "--insecure", "--no-progress-meter"})
_CURL_LONG_VALUED = frozenset({"--max-time", "--output", "--connect-timeout"})
_CURL_FAIL = frozenset({"--fail", "--fail-with-body"})
_WGET_FLAGS = frozenset("qS")
_WGET_VALUED = frozenset("OTt")
_WGET_LONG_FLAGS = frozenset({"--quiet", "--spider", "--server-response", "--no-verbose"})
_WGET_LONG_VALUED = frozenset({"--output-document", "--timeout", "--tries"})


@dataclass(frozen=True)
class _Tool:
    flags: frozenset[str]
    valued: frozenset[str]
    long_flags: frozenset[str]
    long_valued: frozenset[str]


_TOOLS = {
    "curl": _Tool(_CURL_FLAGS, _CURL_VALUED, _CURL_LONG_FLAGS, _CURL_LONG_VALUED),
    "wget": _Tool(_WGET_FLAGS, _WGET_VALUED, _WGET_LONG_FLAGS, _WGET_LONG_VALUED),
}


class _Refused(ValueError):
    """Why a test is not an HTTP check netlab can make."""


def example(port: int) -> str:
    """The hint's example test, on the service's ``port``."""
    return f'test: ["CMD", "curl", "-f", "http://localhost:{port}/health"]'


def shell_words(text: str) -> list[str]:
    """``text`` split as ``/bin/sh -c`` would, its operators (``||``, ``;``, ``&&``) each a
    word of their own; raises _Refused when it does not parse."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""       # sh reads '#' in a word (a URL's fragment) as itself
    try:
        return list(lexer)
    except ValueError as err:
        raise _Refused(f"the test's shell text does not parse ({str(err).lower()})") from None


def _options(tool: str, words: list[str]) -> tuple[list[str], set[str]]:
    """The positional words of a ``curl``/``wget`` command line and the options given
    (``-f`` of ``-sf`` as ``f``, long ones whole); raises _Refused for others."""
    spec = _TOOLS[tool]
    positional: list[str] = []
    given: set[str] = set()
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("--"):
            name, eq, _value = word.partition("=")
            if name in spec.long_flags and not eq:
                given.add(name)
            elif name in spec.long_valued:
                if not eq:
                    if i >= len(words):
                        raise _Refused(f"{tool} option {name} needs a value")
                    i += 1
                given.add(name)
            else:
                raise _Refused(f"{tool} option {name} is not one netlab reads")
        elif word.startswith("-") and word != "-":
            for j, letter in enumerate(word[1:], start=1):
                if letter in spec.valued:
                    if j == len(word) - 1:
                        if i >= len(words):
                            raise _Refused(f"{tool} option -{letter} needs a value")
                        i += 1
                    given.add(letter)
                    break
                if letter not in spec.flags:
                    raise _Refused(f"{tool} option -{letter} is not one netlab reads")
                given.add(letter)
        else:
            positional.append(word)
    return positional, given


def http_check(words: SequenceABC[str], shell: bool) -> tuple[int, str]:
    """(port, path) of the GET the command ``words`` makes; raises _Refused saying why
    it is not a curl or wget of ``http://localhost[:PORT]/PATH`` netlab can make.

    ``shell``: the words come from a ``CMD-SHELL`` text, which may end in ``|| exit 1``.
    """
    words = list(words)
    if shell and words[-3:] == _EXIT_1:
        words = words[:-3]
    elif not shell and "||" in words:
        raise _Refused("CMD runs no shell, so '||' would be an argument of the command; "
                       "drop '|| exit 1' or use CMD-SHELL")
    operators = [w for w in words if shell and w and set(w) <= set("();<>|&")]
    if operators:
        raise _Refused(f"the test is more than one command ({operators[0]!r}); netlab reads one "
                       "curl or wget, maybe followed by || exit 1")
    if not words or not words[0]:
        raise _Refused("the test runs no command")
    tool = words[0].rsplit("/", 1)[-1]
    if tool not in _TOOLS:
        raise _Refused(f"netlab makes a health check's HTTP GET itself, and {words[0]!r} is not "
                       "curl or wget")
    positional, given = _options(tool, words[1:])
    if tool == "curl" and not ("f" in given or given & _CURL_FAIL):
        raise _Refused("curl without -f (--fail) succeeds whatever the HTTP status; add -f")
    if len(positional) != 1:
        raise _Refused(f"{tool} must name one URL, not {len(positional)}")
    url = positional[0]
    m = _URL.fullmatch(url)
    if m is None:
        raise _Refused(f"{url!r} is not http://localhost[:PORT]/PATH or "
                       "http://127.0.0.1[:PORT]/PATH (the check runs inside the task and "
                       "netlab's app speaks plain HTTP)")
    port = int(m.group(2)) if m.group(2) else 80
    if not 1 <= port <= 65535:
        raise _Refused(f"port {m.group(2)} of {url!r} is out of range 1-65535")
    return port, m.group(3) or "/"


def accepted_test(test: SequenceABC[str]) -> tuple[int, str] | None:
    """(port, path) of a test in list form (``["CMD", "curl", "-f", URL]``) netlab can
    make; None for any other, and for ``["NONE"]`` (what ``netlab swarm export``
    asks of a real service's check before writing it)."""
    try:
        if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL") or sum(map(len, test)) > TEST_MAX \
                or any("\0" in t for t in test) or (test[0] == "CMD-SHELL" and len(test) != 2):
            return None
        words = shell_words(test[1]) if test[0] == "CMD-SHELL" else list(test[1:])
        return http_check(words, shell=test[0] == "CMD-SHELL")
    except _Refused:
        return None


def _test(value: Value, path: str, log: IssueLog,
          port_hint: int) -> tuple[tuple[str, ...], int, str] | None:
    """``test`` as written in list form, and its URL's port and path; None when the
    test disables the check (``["NONE"]``), or after recording why it is refused."""
    hint = example(port_hint)
    if isinstance(value, Scalar) and isinstance(value.value, str):
        test: tuple[str, ...] = ("CMD-SHELL", value.value)
    elif isinstance(value, Sequence):
        items = []
        for i, v in enumerate(value.items):
            if not (isinstance(v, Scalar) and isinstance(v.value, str)):
                log.add(item(path, i), f"a test's items are strings, not {kind_of(v)}", hint,
                        v.pos)
                return None
            items.append(v.value)
        test = tuple(items)
    else:
        log.add(path, f"test must be a string or a list, not {kind_of(value)}", hint, value.pos)
        return None
    try:
        if sum(len(t) for t in test) > TEST_MAX or any("\0" in t for t in test):
            raise _Refused(f"the test is over {TEST_MAX} characters or holds a NUL")
        if not test or test[0] not in ("NONE", "CMD", "CMD-SHELL"):
            raise _Refused("a test list starts with NONE, CMD or CMD-SHELL"
                           + (f", not {test[0]!r}" if test else ""))
        if test[0] == "NONE":
            if len(test) > 1:
                raise _Refused('["NONE"] disables the check and takes nothing after it')
            return None
        if test[0] == "CMD-SHELL" and len(test) != 2:
            raise _Refused("CMD-SHELL takes one string, the shell command")
        words = shell_words(test[1]) if test[0] == "CMD-SHELL" else list(test[1:])
        port, url_path = http_check(words, shell=test[0] == "CMD-SHELL")
    except _Refused as why:
        log.add(path, str(why), hint, value.pos)
        return None
    return test, port, url_path


def _period(body: Mapping, key: str, path: str, log: IssueLog, default: float) -> float:
    """A duration of the check; 0 is the Engine's default, under 1ms refused as the Engine
    does. The default when it is not written or is bad (then an issue is recorded)."""
    entry = body.get(key)
    if entry is None:
        return default
    seconds = read_duration(entry.value, field(path, key), log, key, DURATION_MAX)
    if seconds is None:
        return default
    if seconds == 0:
        return default
    if seconds < _MIN_PERIOD:
        log.add(field(path, key), f"{key} {getattr(entry.value, 'raw', '')} is under 1ms",
                "the Engine refuses a health check period under 1ms; write 0 for the default "
                "or at least 1ms", entry.value.pos)
    return seconds


def read_healthcheck(value: Value, path: str, log: IssueLog,
                     app_ports: tuple[int, ...] | None) -> HealthCheck | None:
    """``healthcheck:`` as a HealthCheck, None for no check (``disable: true``, ``test:
    ["NONE"]``) or after recording what is wrong (compare ``log.count()``).

    ``app_ports`` are the tcp ports the task app listens on (its ports' targets and
    ``expose``), which the test's URL must name; None when they are unknown (the
    service's ports are wrong, reported on their own).
    """
    port_hint = app_ports[0] if app_ports else 80
    body = expect_mapping(value, path, log, "healthcheck: {" + example(port_hint) + "}")
    if body is None:
        return None
    before = log.count()
    check_keys(body, path, log, HEALTH_KEYS, known_elsewhere=HEALTH_NOT_MODELLED)
    disabled = False
    if (e := body.get("disable")) is not None:
        if isinstance(e.value, Scalar) and isinstance(e.value.value, bool):
            disabled = e.value.value
        else:
            log.add(field(path, "disable"), f"disable must be true or false, not {kind_of(e.value)}",
                    "write disable: true to turn the check off", e.value.pos)
    test_entry = body.get("test")
    if disabled:
        if test_entry is not None:
            log.add(field(path, "test"), "test and disable can't be set at the same time",
                    "remove test, or disable (as docker stack deploy refuses both)",
                    test_entry.key_pos)
        return None
    if test_entry is None:
        log.add(field(path, "test"), "a health check needs a test (netlab has no image to "
                "inherit one from)", example(port_hint), body.pos)
        return None
    tpath = field(path, "test")
    found = _test(test_entry.value, tpath, log, port_hint)
    interval = _period(body, "interval", path, log, _DEFAULTS.interval)
    timeout = _period(body, "timeout", path, log, _DEFAULTS.timeout)
    start_period = _period(body, "start_period", path, log, _DEFAULTS.start_period)
    retries = _DEFAULTS.retries
    if (e := body.get("retries")) is not None:
        number = read_int(e.value, field(path, "retries"), log, "retries", 0, COUNT_MAX,
                          "consecutive failures before a task is unhealthy, e.g. 3 (0: the "
                          "default, 3)")
        retries = number or retries
    if found is None:
        return None
    test, port, url_path = found
    if app_ports is not None and port not in app_ports:
        listed = ", ".join(str(p) for p in app_ports) or "none"
        log.add(tpath, f"the health check's port {port} is not one the app listens on ({listed})",
                f"use a target port of ports or one of expose: {listed}", test_entry.value.pos)
    if log.count() != before:
        return None
    return HealthCheck(test, port, url_path, interval, timeout, retries, start_period)
