"""A service's ``deploy.restart_policy``, ``deploy.update_config`` and ``deploy.rollback_config``.

Keys and values as the compose spec's ``deploy`` section writes them
(compose-spec ``deploy.md``); what is not written takes Swarm's default, not
the spec's prose: swarmkit fills a missing restart delay and update monitor
with 5s (``api/defaults/service.go``, ``InterpolateService``), and the Docker
CLI names the same values as its flags' defaults (docker/cli
``cli/command/service/opts.go``, ``buildServiceDefaultFlagMapping``). A
``monitor`` of 0 is swarmkit's 5s too: the Engine passes no monitor on then
(moby ``daemon/cluster/convert/service.go``, ``updateConfigToGRPC``), while a
restart ``delay`` of 0 stays 0 (``restartPolicyToGRPC`` passes it on). See
:class:`netlab.model.RestartPolicy` and :class:`netlab.model.UpdateConfig`.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import get_args

from netlab.model import (
    COUNT_MAX, DURATION_MAX, FailureAction, RestartCondition, RestartPolicy, UpdateConfig,
    UpdateOrder,
)
from netlab.scenario.fields import (
    check_keys, expect_mapping, read_choice, read_duration, read_int, read_number,
)
from netlab.scenario.issues import IssueLog, field
from netlab.scenario.yamltree import Value

RESTART_KEYS = ("condition", "delay", "max_attempts", "window")
UPDATE_KEYS = ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order")
CONDITIONS: tuple[RestartCondition, ...] = get_args(RestartCondition)
UPDATE_ACTIONS: tuple[FailureAction, ...] = get_args(FailureAction)
ROLLBACK_ACTIONS: tuple[FailureAction, ...] = ("pause", "continue")
ORDERS: tuple[UpdateOrder, ...] = get_args(UpdateOrder)

RESTART_EXAMPLE = "restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 120s}"
UPDATE_EXAMPLE = "update_config: {parallelism: 1, delay: 10s, order: start-first}"
ROLLBACK_EXAMPLE = "rollback_config: {parallelism: 1, failure_action: pause}"
_COUNT_HINT = f"a whole number from 0 to {COUNT_MAX}"
_ACTION_NOT_MODELLED = MappingProxyType({
    "rollback": ("a rollback cannot itself roll back (the compose spec and docker service "
                 "--rollback-failure-action take pause or continue); use pause or continue"),
})


def read_restart_policy(value: Value, path: str, log: IssueLog) -> RestartPolicy | None:
    """``deploy.restart_policy``; None after recording what is wrong."""
    body = expect_mapping(value, path, log, RESTART_EXAMPLE)
    if body is None:
        return None
    before = log.count()
    check_keys(body, path, log, RESTART_KEYS)
    policy = RestartPolicy()
    if (e := body.get("condition")) is not None:
        condition = read_choice(e.value, field(path, "condition"), log, "restart condition",
                                CONDITIONS)
        if condition is not None:
            policy = replace(policy, condition=condition)
    if (e := body.get("delay")) is not None:
        delay = read_duration(e.value, field(path, "delay"), log, "delay", DURATION_MAX)
        if delay is not None:
            policy = replace(policy, delay=delay)
    if (e := body.get("max_attempts")) is not None:
        attempts = read_int(e.value, field(path, "max_attempts"), log, "max_attempts", 0,
                            COUNT_MAX, f"{_COUNT_HINT}; 0 (the default) never gives up")
        if attempts is not None:
            policy = replace(policy, max_attempts=attempts)
    if (e := body.get("window")) is not None:
        window = read_duration(e.value, field(path, "window"), log, "window", DURATION_MAX)
        if window is not None:
            policy = replace(policy, window=window)
    return policy if log.count() == before else None


def read_update_config(value: Value, path: str, log: IssueLog,
                       rollback: bool = False) -> UpdateConfig | None:
    """``deploy.update_config`` (or, with ``rollback``, ``deploy.rollback_config``, whose
    failure action is pause or continue); None after recording what is wrong."""
    body = expect_mapping(value, path, log, ROLLBACK_EXAMPLE if rollback else UPDATE_EXAMPLE)
    if body is None:
        return None
    before = log.count()
    check_keys(body, path, log, UPDATE_KEYS)
    config = UpdateConfig()
    if (e := body.get("parallelism")) is not None:
        parallelism = read_int(e.value, field(path, "parallelism"), log, "parallelism", 0,
                               COUNT_MAX, f"{_COUNT_HINT}; 0 replaces every task at once")
        if parallelism is not None:
            config = replace(config, parallelism=parallelism)
    if (e := body.get("delay")) is not None:
        delay = read_duration(e.value, field(path, "delay"), log, "delay", DURATION_MAX)
        if delay is not None:
            config = replace(config, delay=delay)
    if (e := body.get("monitor")) is not None:
        monitor = read_duration(e.value, field(path, "monitor"), log, "monitor", DURATION_MAX)
        if monitor:     # 0 is no monitor for the Engine either: swarmkit's 5s
            config = replace(config, monitor=monitor)
    if (e := body.get("failure_action")) is not None:
        apath = field(path, "failure_action")
        raw = getattr(e.value, "value", None)
        if rollback and isinstance(raw, str) and raw in _ACTION_NOT_MODELLED:
            log.add(apath, f"failure_action {raw!r} is not one of a rollback",
                    _ACTION_NOT_MODELLED[raw], e.value.pos)
        else:
            action = read_choice(e.value, apath, log, "failure_action",
                                 ROLLBACK_ACTIONS if rollback else UPDATE_ACTIONS)
            if action is not None:
                config = replace(config, failure_action=action)
    if (e := body.get("max_failure_ratio")) is not None:
        ratio = read_number(e.value, field(path, "max_failure_ratio"), log, "max_failure_ratio",
                            0.0, 1.0, "a fraction of the tasks from 0 to 1, e.g. 0.2")
        if ratio is not None:
            config = replace(config, max_failure_ratio=ratio)
    if (e := body.get("order")) is not None:
        order = read_choice(e.value, field(path, "order"), log, "update order", ORDERS)
        if order is not None:
            config = replace(config, order=order)
    return config if log.count() == before else None
