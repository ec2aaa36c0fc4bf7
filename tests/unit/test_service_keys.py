"""The scenario keys a Swarm manager needs: image, environment, healthcheck,
deploy.restart_policy, deploy.update_config and deploy.rollback_config; each read with
Swarm's defaults, each refusal naming its field and place."""

from __future__ import annotations

import pytest

from netlab.model import DEFAULT_IMAGE, HealthCheck, RestartPolicy, Service, UpdateConfig
from netlab.scenario import load_lab, load_lab_from_text
from netlab.scenario.fields import parse_duration
from tests.unit.test_scenario import GOOD, SCENARIOS, assert_issue, issues_of, yaml_text


def web(extra: str = "", deploy: str = "", ports: str = '["8080:80"]') -> str:
    """A two-node lab whose service ``web`` has ``extra`` lines (indented 4) and
    ``deploy`` lines (indented 6)."""
    text = ("name: lab\nnodes: {node1: {role: manager}, node2: {}}\nservices:\n  web:\n"
            f"    ports: {ports}\n    deploy:\n      replicas: 2\n")
    text += "".join(f"      {line}\n" for line in deploy.splitlines() if line)
    text += "".join(f"    {line}\n" for line in extra.splitlines() if line)
    return text


def service(text: str) -> Service:
    return load_lab_from_text(text, "lab.yaml").service("web")


# --- defaults ------------------------------------------------------------------

def test_a_service_without_the_keys_takes_swarms_defaults():
    s = load_lab_from_text(GOOD, "lab.yaml").service("web")
    assert s.image == DEFAULT_IMAGE == "netlab/app:latest" and s.version == "latest"
    assert s.env == () and s.healthcheck is None
    assert s.restart_policy == RestartPolicy("any", 5.0, 0, 0.0)
    assert s.update_config == UpdateConfig(1, 0.0, "pause", 5.0, 0.0, "stop-first")
    assert s.rollback_config == UpdateConfig(1, 0.0, "pause", 5.0, 0.0, "stop-first")


def test_empty_mappings_are_the_defaults_too():
    s = service(web("environment:", "restart_policy: {}\nupdate_config: {}\nrollback_config:"))
    assert s.env == () and s.restart_policy == RestartPolicy()
    assert s.update_config == s.rollback_config == UpdateConfig()


def test_the_shipped_rolling_scenario():
    lab = load_lab(SCENARIOS / "rolling.yaml")
    s = lab.service("web")
    assert [(t.name, t.node) for t in lab.tasks] == [("web.1", "node1"), ("web.2", "node2")]
    assert (s.image, s.version, s.replicas) == ("web:1", "1", 2)
    assert s.healthcheck == HealthCheck(("CMD", "curl", "-f", "http://localhost:80/health"),
                                        80, "/health", 2.0, 1.0, 2, 0.0)
    assert s.restart_policy == RestartPolicy("any", 5.0, 0, 0.0)
    assert s.update_config == UpdateConfig(1, 2.0, "rollback", 4.0, 0.0, "stop-first")
    assert s.rollback_config == UpdateConfig()


# --- image ---------------------------------------------------------------------

@pytest.mark.parametrize("written, image, version", [
    ("web", "web:latest", "latest"),
    ("web:2", "web:2", "2"),
    ("team/web:1.4.0", "team/web:1.4.0", "1.4.0"),
    ("registry:5000/team/web", "registry:5000/team/web:latest", "latest"),
    ("registry:5000/web:v2", "registry:5000/web:v2", "v2"),
    ('"web:latest"', "web:latest", "latest"),
])
def test_image_name_and_tag(written, image, version):
    s = service(web(f"image: {written}"))
    assert (s.image, s.version) == (image, version)


@pytest.mark.parametrize("written, message", [
    ('""', "the image is empty"),
    ('"web 2"', "holds whitespace"),
    ("5", "image must be a string, not a number"),
    ("[web]", "image must be a string, not a list"),
    ("web@sha256:0123abcd", "has a digest"),
    ('"web:"', "has a bad tag ''"),
    ('"team//web"', "has an empty name"),
    ('"/web"', "has an empty name"),
    ('"web:-x"', "has a bad tag '-x'"),
])
def test_bad_images_are_refused_naming_the_field(written, message):
    text = web(f"image: {written}")
    issue = assert_issue(text, "services.web.image", written, message)
    assert "NAME[:TAG]" in issue.hint


def test_command_and_entrypoint_are_still_refused():
    text = web("command: [serve]")
    issue = assert_issue(text, "services.web.command", "command", "unknown key 'command'")
    assert "its own HTTP echo app" in issue.hint
    assert_issue(web("entrypoint: x"), "services.web.entrypoint", "entrypoint", "unknown key")
    issue = assert_issue(web("restart: always"), "services.web.restart", "restart", "unknown key")
    assert "deploy.restart_policy" in issue.hint


# --- environment -----------------------------------------------------------------

def test_environment_as_a_mapping_sorted_with_numbers_as_written():
    s = service(web('environment: {WORKERS: 4, MODE: blue, RATIO: 1.50, FLAG: "true", '
                    'EMPTY: ""}'))
    assert s.env == (("EMPTY", ""), ("FLAG", "true"), ("MODE", "blue"), ("RATIO", "1.50"),
                     ("WORKERS", "4"))


def test_environment_as_a_list_of_key_value():
    s = service(web('environment: ["MODE=blue", "A=x=y", "EMPTY="]'))
    assert s.env == (("A", "x=y"), ("EMPTY", ""), ("MODE", "blue"))


@pytest.mark.parametrize("written, path, needle, message", [
    ("{DEBUG: true}", "services.web.environment.DEBUG", "true", "YAML reads true as a boolean"),
    ("{DEBUG: }", "services.web.environment.DEBUG", None, "the variable has no value"),
    ("{DEBUG: [1]}", "services.web.environment.DEBUG", "[1]", "a variable's value is a string"),
    ('["DEBUG"]', "services.web.environment[0]", '"DEBUG"', "DEBUG has no value"),
    ('["=x"]', "services.web.environment[0]", '"=x"', "'' is not a variable name"),
    ('["A=1", "A=2"]', "services.web.environment[1]", '"A=2"', "variable 'A' is given twice"),
    ("[5]", "services.web.environment[0]", "5]", "an entry must be a string KEY=VALUE"),
    ("5", "services.web.environment", "5", "environment must be a mapping or a list"),
    ("{A: 1, A: 2}", "services.web.environment.A", "A: 2", "variable 'A' is given twice"),
])
def test_bad_environments_are_refused_naming_the_variable(written, path, needle, message):
    assert_issue(web(f"environment: {written}"), path, needle, message)


# --- durations -----------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("5s", 5.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("2.5s", 2.5),
    ("1h5m30s20ms", 3930.02), ("10us", 1e-5), ("7ns", 7e-9), ("0", 0.0), ("45", 45.0),
    ("1.5", 1.5), (".5s", 0.5),
])
def test_durations_as_compose_writes_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5 s", "-5s", "5x", "s", "1m30", "abc", "5S", "1:30",
                                  "5s ", "+5s", "1e3s"])
def test_what_is_not_a_duration(text):
    assert parse_duration(text) is None


@pytest.mark.parametrize("written, seconds", [
    ("5s", 5.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("2.5s", 2.5), ("30", 30.0),
    ("2.5", 2.5), ('"0"', 0.0),
])
def test_a_duration_field_takes_a_string_or_seconds(written, seconds):
    s = service(web(deploy=f"restart_policy: {{delay: {written}}}"))
    assert s.restart_policy.delay == pytest.approx(seconds)


@pytest.mark.parametrize("written, message, hint", [
    ('"5 s"', "delay '5 s' is not a duration", "written without a space"),
    ("-5s", "delay '-5s' is not a duration", "never negative"),
    ("-1", "delay -1 is not a duration", "never negative"),
    ("5x", "delay '5x' is not a duration", "5s, 1m30s, 500ms, 1h, 2.5s"),
    ("1:30", "delay '1:30' is not a duration", "5s, 1m30s"),
    ("true", "delay must be a duration, not true (a boolean)", "5s, 1m30s"),
    ("[5s]", "delay must be a duration, not a list", "5s, 1m30s"),
    ("9000h", "delay 9000h is longer than 3.1536e+07 s", "at most"),
])
def test_bad_durations_are_refused_naming_the_field(written, message, hint):
    text = web(deploy=f"restart_policy: {{delay: {written}}}")
    issue = assert_issue(text, "services.web.deploy.restart_policy.delay", written, message)
    assert hint in issue.hint


# --- deploy.restart_policy ------------------------------------------------------

def test_restart_policy_every_key():
    s = service(web(deploy="restart_policy:\n  condition: on-failure\n  delay: 10s\n"
                           "  max_attempts: 3\n  window: 2m"))
    assert s.restart_policy == RestartPolicy("on-failure", 10.0, 3, 120.0)
    assert service(web(deploy="restart_policy: {condition: none}")).restart_policy == \
        RestartPolicy("none", 5.0, 0, 0.0)


@pytest.mark.parametrize("written, path, needle, message", [
    ("{condition: always}", "condition", "always", "unknown restart condition 'always'"),
    ("{condition: 1}", "condition", "1}", "restart condition must be one of none, on-failure, any"),
    ("{max_attempts: -1}", "max_attempts", "-1", "max_attempts -1 is out of range"),
    ("{max_attempts: 2.5}", "max_attempts", "2.5", "max_attempts must be an integer"),
    ("{window: 1d}", "window", "1d", "window '1d' is not a duration"),
    ("{delays: 5s}", "delays", "delays", "unknown key 'delays'"),
])
def test_bad_restart_policies_are_refused_naming_the_field(written, path, needle, message):
    text = web(deploy=f"restart_policy: {written}")
    assert_issue(text, f"services.web.deploy.restart_policy.{path}", needle, message)


def test_restart_policy_must_be_a_mapping():
    assert_issue(web(deploy="restart_policy: any"), "services.web.deploy.restart_policy", "any",
                 "must be a mapping, not a string")


# --- deploy.update_config and rollback_config ----------------------------------

def test_update_and_rollback_config_every_key():
    s = service(web(deploy="update_config: {parallelism: 0, delay: 10s, failure_action: continue, "
                           "monitor: 30s, max_failure_ratio: 0.25, order: start-first}\n"
                           "rollback_config: {parallelism: 2, delay: 1s, failure_action: continue, "
                           "monitor: 1m, max_failure_ratio: 1, order: start-first}"))
    assert s.update_config == UpdateConfig(0, 10.0, "continue", 30.0, 0.25, "start-first")
    assert s.rollback_config == UpdateConfig(2, 1.0, "continue", 60.0, 1.0, "start-first")
    assert service(web(deploy="update_config: {failure_action: rollback}")).update_config == \
        UpdateConfig(failure_action="rollback")


@pytest.mark.parametrize("section, written, path, needle, message", [
    ("update_config", "{parallelism: -1}", "parallelism", "-1", "parallelism -1 is out of range"),
    ("update_config", "{failure_action: stop}", "failure_action", "stop",
     "unknown failure_action 'stop'"),
    ("rollback_config", "{failure_action: rollback}", "failure_action", "rollback}",
     "failure_action 'rollback' is not one of a rollback"),
    ("update_config", "{max_failure_ratio: 1.5}", "max_failure_ratio", "1.5",
     "max_failure_ratio 1.5 is out of range 0-1"),
    ("update_config", '{max_failure_ratio: "0.2"}', "max_failure_ratio", '"0.2"',
     "max_failure_ratio must be a number, not a string"),
    ("rollback_config", "{order: start-last}", "order", "start-last",
     "unknown update order 'start-last'"),
    ("update_config", "{monitor: 5 }", "monitor", None, None),
    ("update_config", "{monitor: fast}", "monitor", "fast", "monitor 'fast' is not a duration"),
    ("rollback_config", "{delay: 1w}", "delay", "1w", "delay '1w' is not a duration"),
    ("update_config", "{parallel: 2}", "parallel", "parallel", "unknown key 'parallel'"),
])
def test_bad_update_configs_are_refused_naming_the_field(section, written, path, needle, message):
    text = web(deploy=f"{section}: {written}")
    if message is None:     # a bare number of seconds is fine
        assert service(text).update_config.monitor == 5.0
        return
    assert_issue(text, f"services.web.deploy.{section}.{path}", needle, message)


def test_unknown_key_hint_names_the_allowed_ones():
    issue = assert_issue(web(deploy="update_config: {orders: start-first}"),
                         "services.web.deploy.update_config.orders", "orders", "unknown key")
    assert "did you mean 'order'?" in issue.hint and "max_failure_ratio" in issue.hint


# --- healthcheck ----------------------------------------------------------------

def health(test: str, more: str = "", ports: str = '["8080:80"]', extra: str = "") -> str:
    return web(f"healthcheck:\n  test: {test}\n" + "".join(f"  {line}\n" for line in
                                                          more.splitlines() if line) + extra,
               ports=ports)


@pytest.mark.parametrize("test, port, path", [
    ('["CMD", "curl", "-f", "http://localhost:80/health"]', 80, "/health"),
    ('"curl -f http://localhost/health || exit 1"', 80, "/health"),
    ('["CMD-SHELL", "curl -sf http://127.0.0.1:80/ || exit 1"]', 80, "/"),
    ('["CMD", "curl", "--fail", "--silent", "http://localhost:80"]', 80, "/"),
    ('["CMD", "curl", "-fsS", "-m", "2", "http://localhost/h"]', 80, "/h"),
    ('["CMD", "/usr/bin/curl", "-sSf", "-m2", "-o", "/dev/null", "http://localhost/h"]', 80, "/h"),
    ('"curl --fail --max-time=2 --output /dev/null http://localhost:80/h||exit 1"', 80, "/h"),
    ('["CMD", "wget", "-q", "--spider", "http://localhost:80/health"]', 80, "/health"),
    ('"wget -qO- http://localhost:80/health?full=1 || exit 1"', 80, "/health?full=1"),
    ('["CMD", "wget", "-O", "-", "-T", "2", "http://127.0.0.1/x"]', 80, "/x"),
    ("\"wget --quiet --output-document=- 'http://localhost:80/a b'\"", None, None),
])
def test_http_checks_of_the_task_are_read_to_port_and_path(test, port, path):
    text = health(test)
    if port is None:        # a space in the URL: not a URL netlab reads
        assert_issue(text, "services.web.healthcheck.test", None, "is not http://localhost")
        return
    check = service(text).healthcheck
    assert check is not None and (check.port, check.path) == (port, path)


def test_a_string_test_is_kept_in_cmd_shell_form_and_a_list_as_written():
    text = health('"curl -f http://localhost/health || exit 1"')
    check = service(text).healthcheck
    assert check is not None
    assert check.test == ("CMD-SHELL", "curl -f http://localhost/health || exit 1")
    check = service(health('["CMD", "curl", "-f", "http://localhost/"]')).healthcheck
    assert check is not None and check.test == ("CMD", "curl", "-f", "http://localhost/")


def test_healthcheck_defaults_are_the_engines():
    check = service(health('["CMD", "curl", "-f", "http://localhost/"]')).healthcheck
    assert check == HealthCheck(("CMD", "curl", "-f", "http://localhost/"), 80, "/",
                                30.0, 30.0, 3, 0.0)


def test_healthcheck_every_key_and_zero_as_the_engines_default():
    check = service(health('["CMD", "curl", "-f", "http://localhost/"]',
                           "interval: 2s\ntimeout: 1s\nretries: 2\nstart_period: 10s")).healthcheck
    assert check is not None
    assert (check.interval, check.timeout, check.retries, check.start_period) == (2.0, 1.0, 2, 10.0)
    check = service(health('["CMD", "curl", "-f", "http://localhost/"]',
                           "interval: 0s\ntimeout: 0\nretries: 0")).healthcheck
    assert check is not None and (check.interval, check.timeout, check.retries) == (30.0, 30.0, 3)


def test_the_port_may_be_an_exposed_one_or_any_tcp_target():
    text = health('["CMD", "curl", "-f", "http://localhost:9000/ready"]',
                  ports='["8080:80", "8443:443"]', extra="expose: [9000]\n")
    check = service(text).healthcheck
    assert check is not None and (check.port, check.path) == (9000, "/ready")
    check = service(health('"curl -f http://localhost:443/"', ports='["8080:80", "8443:443"]'))
    assert check.healthcheck is not None and check.healthcheck.port == 443


@pytest.mark.parametrize("written", ["disable: true", 'test: ["NONE"]'])
def test_a_disabled_check_is_none(written):
    s = service(web(f"healthcheck: {{{written}}}"))
    assert s.healthcheck is None


@pytest.mark.parametrize("test, message", [
    ('["CMD", "curl", "http://localhost:80/"]', "curl without -f (--fail) succeeds whatever"),
    ('"curl -f http://example.com/"', "'http://example.com/' is not http://localhost[:PORT]/PATH"),
    ('"curl -f https://localhost/"', "'https://localhost/' is not http://localhost"),
    ('"curl -f http://10.0.0.5/"', "is not http://localhost[:PORT]/PATH or http://127.0.0.1"),
    ('"curl -f http://localhost/#top"', "is not http://localhost"),
    ('["CMD", "python", "check.py"]', "'python' is not curl or wget"),
    ('"pg_isready -U postgres"', "'pg_isready' is not curl or wget"),
    ('"curl -f http://localhost/ && echo ok"', "more than one command ('&&')"),
    ('"curl -f http://localhost/ | grep ok"', "more than one command ('|')"),
    ('"curl -f http://localhost/; exit 0"', "more than one command (';')"),
    ('"curl -f http://localhost/ || exit 0"', "more than one command ('||')"),
    ('["CMD", "curl", "-f", "http://localhost/", "||", "exit", "1"]', "CMD runs no shell"),
    ('["CMD-SHELL"]', "CMD-SHELL takes one string"),
    ('["CMD-SHELL", "curl", "-f"]', "CMD-SHELL takes one string"),
    ('["CMD"]', "the test runs no command"),
    ('["RUN", "curl"]', "a test list starts with NONE, CMD or CMD-SHELL, not 'RUN'"),
    ("[]", "a test list starts with NONE, CMD or CMD-SHELL"),
    ('["NONE", "x"]', '["NONE"] disables the check and takes nothing after it'),
    ("\"curl -f 'http://localhost/\"", "the test's shell text does not parse (no closing quotation)"),
    ('""', "the test runs no command"),
    ('["CMD", "curl", "-f", "-X", "POST", "http://localhost/"]', "curl option -X is not one netlab reads"),
    ('["CMD", "curl", "-fI", "http://localhost/"]', "curl option -I is not one netlab reads"),
    ('["CMD", "curl", "-f", "--head", "http://localhost/"]', "curl option --head is not one netlab reads"),
    ('["CMD", "curl", "-f", "-m"]', "curl option -m needs a value"),
    ('["CMD", "wget", "-q", "--post-data=x", "http://localhost/"]', "wget option --post-data"),
    ('["CMD", "curl", "-f"]', "curl must name one URL, not 0"),
    ('["CMD", "curl", "-f", "http://localhost/a", "http://localhost/b"]', "curl must name one URL, not 2"),
    ('"curl -f http://localhost:99999/"', "port 99999 of 'http://localhost:99999/' is out of range"),
    ('"curl -f http://localhost:0/"', "port 0 of"),
    ("5", "test must be a string or a list, not a number"),
    ("{cmd: curl}", "test must be a string or a list, not a mapping"),
])
def test_tests_netlab_cannot_make_are_refused_naming_the_test(test, message):
    issue = assert_issue(health(test), "services.web.healthcheck.test", None, message)
    assert issue.hint == 'test: ["CMD", "curl", "-f", "http://localhost:80/health"]'
    assert "\n" not in issue.message


def test_a_refused_test_points_at_the_test():
    text = health('["CMD", "python", "check.py"]')
    assert_issue(text, "services.web.healthcheck.test", '["CMD", "python"', "not curl or wget")


def test_a_test_item_that_is_no_string_is_named_by_its_index():
    assert_issue(health('["CMD", "curl", 5]'), "services.web.healthcheck.test[2]", "5]",
                 "a test's items are strings, not a number")


def test_the_hint_uses_the_services_own_port():
    issue = assert_issue(health('"true"', ports='["5000:3000"]'), "services.web.healthcheck.test",
                         None, "not curl or wget")
    assert issue.hint == 'test: ["CMD", "curl", "-f", "http://localhost:3000/health"]'


def test_the_port_must_be_one_the_app_listens_on():
    text = health('["CMD", "curl", "-f", "http://localhost:3000/health"]',
                  ports='["8080:80", "9090:90"]')
    issue = assert_issue(text, "services.web.healthcheck.test", '["CMD"',
                         "the health check's port 3000 is not one the app listens on (80, 90)")
    assert issue.hint == "use a target port of ports or one of expose: 80, 90"


def test_a_udp_target_is_no_port_for_an_http_check():
    text = health('["CMD", "curl", "-f", "http://localhost:53/"]', ports='["53:53/udp"]',
                  extra="networks: [backend]\n")
    text = text.replace("services:", "networks: {backend: {driver: overlay}}\nservices:")
    assert_issue(text, "services.web.healthcheck.test", '["CMD"',
                 "the health check's port 53 is not one the app listens on (none)")


def test_no_port_check_when_the_ports_are_wrong_themselves():
    text = health('["CMD", "curl", "-f", "http://localhost:3000/"]', ports='["8080:99999"]')
    assert [i.path for i in issues_of(text)] == ["services.web.ports[0].target"]


@pytest.mark.parametrize("more, path, needle, message", [
    ("interval: 500us", "interval", "500us", "interval 500us is under 1ms"),
    ("timeout: 10us", "timeout", "10us", "timeout 10us is under 1ms"),
    ("start_period: 1ns", "start_period", "1ns", "start_period 1ns is under 1ms"),
    ("interval: soon", "interval", "soon", "interval 'soon' is not a duration"),
    ("retries: -1", "retries", "-1", "retries -1 is out of range"),
    ("retries: three", "retries", "three", "retries must be an integer"),
    ("start_interval: 5s", "start_interval", "start_interval", "unknown key 'start_interval'"),
    ("disable: yes please", "disable", "yes please", "disable must be true or false"),
])
def test_bad_healthcheck_fields_are_refused_naming_the_field(more, path, needle, message):
    text = health('["CMD", "curl", "-f", "http://localhost/"]', more)
    assert_issue(text, f"services.web.healthcheck.{path}", needle, message)


def test_test_and_disable_together_are_refused_as_docker_does():
    text = web('healthcheck: {disable: true, test: ["CMD", "curl", "-f", "http://localhost/"]}')
    assert_issue(text, "services.web.healthcheck.test", "test:",
                 "test and disable can't be set at the same time")


def test_a_check_without_a_test_is_refused():
    text = web("healthcheck: {interval: 5s}")
    issue = assert_issue(text, "services.web.healthcheck.test", "{interval",
                         "a health check needs a test")
    assert issue.hint.startswith('test: ["CMD", "curl"')


def test_healthcheck_must_be_a_mapping():
    assert_issue(web("healthcheck: curl"), "services.web.healthcheck", "curl",
                 "must be a mapping, not a string")


def test_every_problem_of_a_service_is_reported_at_once():
    text = yaml_text("""
        nodes: {node1: {role: manager}}
        services:
          web:
            image: "web 1"
            environment: [X]
            ports: ["8080:80"]
            healthcheck: {test: "wget http://example.com/", retries: -2}
            deploy:
              restart_policy: {condition: sometimes}
              update_config: {order: random, delay: 1y}
              rollback_config: {failure_action: rollback}
    """)
    assert [i.path for i in issues_of(text)] == [
        "services.web.image", "services.web.environment[0]", "services.web.healthcheck.test",
        "services.web.healthcheck.retries", "services.web.deploy.restart_policy.condition",
        "services.web.deploy.update_config.order", "services.web.deploy.update_config.delay",
        "services.web.deploy.rollback_config.failure_action"]


def test_a_monitor_of_zero_is_swarmkits_five_seconds_as_the_engine_passes_none_on():
    s = service(web(deploy="update_config: {monitor: 0s}\nrollback_config: {monitor: 0}"))
    assert s.update_config.monitor == s.rollback_config.monitor == 5.0
    assert service(web(deploy="restart_policy: {delay: 0s}")).restart_policy.delay == 0.0
