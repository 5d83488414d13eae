"""load_project: parsing, interpolation, schema, normalisation; errors name the key and the line."""

from __future__ import annotations

import textwrap

import pytest

from dockmesh.compose import ComposeError, Mount, Port, load_project


def load(text: str, env: str | None = None, name: str = "demo", **kw: object):  # type: ignore[no-untyped-def]
    return load_project(name, textwrap.dedent(text), env, **kw)  # type: ignore[arg-type]


def error(text: str, env: str | None = None, **kw: object) -> ComposeError:
    with pytest.raises(ComposeError) as info:
        load(text, env, **kw)
    return info.value


DONE_WHEN = """\
services:
  web:
    image: local/busybox:1
    command: httpd -f -p 8080 -h /data
    volumes: [data:/data]
    networks: [back]
    depends_on:
      db: {condition: service_healthy}
  db:
    image: local/busybox:1
    command: ["sleep", "600"]
    networks: [back]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
volumes:
  data:
networks:
  back:
"""


def test_the_done_when_stack_normalises_in_start_order() -> None:
    project = load(DONE_WHEN)
    assert list(project.services) == ["db", "web"]
    web = project.services["web"]
    assert web.command == ("httpd", "-f", "-p", "8080", "-h", "/data")
    assert web.mounts == (Mount(type="volume", source="data", target="/data"),)
    assert web.networks == (("back", ()),)
    assert web.depends_on == (("db", "service_healthy"),)
    assert project.networks["back"].name == "demo_back"
    assert project.volumes["data"].name == "demo_data"
    assert "default" not in project.networks
    hc = project.services["db"].healthcheck
    assert hc is not None
    assert hc.test == ("CMD", "true")
    assert hc.interval_ns == 10**9


def test_implicit_default_network() -> None:
    project = load("services:\n  a:\n    image: x\n")
    assert project.services["a"].networks == (("default", ()),)
    assert project.networks["default"].name == "demo_default"


def test_version_is_ignored_and_name_must_match() -> None:
    assert load("version: '3.8'\nname: demo\nservices:\n  a: {image: x}\n").name == "demo"
    err = error("name: other\nservices:\n  a: {image: x}\n")
    assert (err.key, err.line) == ("name", 1)


@pytest.mark.parametrize("name", ["../x", "a/b", "Upper", "", "-x", "x" * 64])
def test_bad_project_names(name: str) -> None:
    with pytest.raises(ComposeError, match="invalid stack name"):
        load_project(name, "services:\n  a: {image: x}\n")


# --- interpolation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A}", "A=1", "1"),
        ("$A-x", "A=1", "1-x"),
        ("${A:-d}", "A=", "d"),
        ("${A-d}", "A=", ""),
        ("${A-d}", "", "d"),
        ("${A:-${B}}", "B=2", "2"),
        ("${A:+alt}", "A=1", "alt"),
        ("${A+alt}", "", ""),
        ("$$A", "A=1", "$A"),
        ("${UNSET}", "", ""),
        ("pre ${A} post", 'A="q q"', "pre q q post"),
    ],
)
def test_interpolation(value: str, env: str, expected: str) -> None:
    project = load(f"services:\n  a:\n    image: x\n    environment:\n      V: '{value}'\n", env)
    assert dict(project.services["a"].environment)["V"] == expected


def test_process_environment_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_OF_AGENT", "leak")
    project = load(
        "services:\n  a:\n    image: x\n    environment: ['V=${SECRET_OF_AGENT}', SECRET_OF_AGENT]\n"
    )
    assert dict(project.services["a"].environment) == {"V": ""}


@pytest.mark.parametrize(
    ("value", "env", "message"),
    [
        ("${A:?set A please}", "A=", "set A please"),
        ("${A?needed}", "", "needed"),
        ("${A:?}", "", "variable A is required"),
        ("${A", "", "unclosed"),
        ("${-x}", "", "invalid interpolation"),
        ("cost $5", "", "use $$"),
    ],
)
def test_interpolation_errors_name_key_and_line(value: str, env: str, message: str) -> None:
    err = error(f"services:\n  a:\n    image: x\n    environment:\n      V: '{value}'\n", env)
    assert message in err.message
    assert (err.code, err.key, err.line) == ("invalid_compose", "services.a.environment.V", 5)


def test_required_variable_satisfied() -> None:
    assert (
        load("services:\n  a:\n    image: ${IMG:?no image}\n", "IMG=busybox").services["a"].image == "busybox"
    )


def test_bad_env_text_line_is_reported() -> None:
    err = error("services:\n  a: {image: x}\n", "A=1\nthis is not\n")
    assert err.key == ".env"
    assert ".env line 2" in err.message


# --- environment, labels, env_file ---------------------------------------------------------------------
def test_environment_list_and_map_and_bare_names() -> None:
    project = load(
        """
        services:
          a:
            image: x
            environment: [A=1, B, C=x=y, "D="]
          b:
            image: x
            environment: {A: 1, B: null, T: true, F: 1.5}
        """,
        "B=from-env",
    )
    assert dict(project.services["a"].environment) == {"A": "1", "B": "from-env", "C": "x=y", "D": ""}
    assert dict(project.services["b"].environment) == {"A": "1", "B": "from-env", "T": "true", "F": "1.5"}


def test_env_file_dot_env_only() -> None:
    project = load("services:\n  a:\n    image: x\n    env_file: .env\n    environment: {B: 2}\n", "A=1\nB=1")
    assert dict(project.services["a"].environment) == {"A": "1", "B": "2"}
    err = error("services:\n  a:\n    image: x\n    env_file: [.env, ./secrets.env]\n")
    assert (err.code, err.key, err.line) == ("unsupported_key", "services.a.env_file.1", 4)


def test_labels_list_and_map() -> None:
    project = load(
        "services:\n  a:\n    image: x\n    labels: [a=1, b=2]\n  b:\n    image: x\n    labels: {c: 3}\n"
    )
    assert project.services["a"].labels == (("a", "1"), ("b", "2"))
    assert project.services["b"].labels == (("c", "3"),)


# --- unsupported and unknown keys -------------------------------------------------------------------
def test_build_is_refused_with_advice() -> None:
    err = error("services:\n  web:\n    build: .\n    image: x\n")
    assert (err.code, err.key, err.line) == ("unsupported_key", "services.web.build", 3)
    assert "push the image to a registry" in err.message


def test_unknown_service_key() -> None:
    err = error("services:\n  web:\n    image: x\n    imagee: y\n")
    assert (err.code, err.key, err.line) == ("unsupported_key", "services.web.imagee", 4)


def test_unknown_top_level_key() -> None:
    err = error("services:\n  a: {image: x}\nsecrets:\n  s: {file: ./s}\n")
    assert (err.code, err.key, err.line) == ("unsupported_key", "secrets", 3)


def test_unknown_nested_key() -> None:
    err = error(
        "services:\n  a:\n    image: x\n    healthcheck:\n      test: [CMD, 'true']\n      every: 1s\n"
    )
    assert (err.key, err.line) == ("services.a.healthcheck.every", 6)


def test_first_error_in_document_order() -> None:
    err = error("services:\n  a:\n    image: x\n    zzz: 1\n  b:\n    aaa: 1\n    image: x\n")
    assert err.line == 4


def test_missing_image() -> None:
    err = error("services:\n  a:\n    command: x\n")
    assert (err.key, err.line) == ("services.a", 2)
    assert "'image' is required" in err.message


def test_wrong_type() -> None:
    err = error("services:\n  a:\n    image: x\n    cap_add: NET_ADMIN\n")
    assert (err.code, err.key, err.line) == ("invalid_compose", "services.a.cap_add", 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("- a\n- b\n", "must be a mapping"),
        ("services: [\n", "invalid YAML"),
        ("services:\n  a: {image: x}\n  a: {image: y}\n", "duplicate key"),
        ("services: {}\n", "services"),
    ],
)
def test_not_a_compose_file(text: str, message: str) -> None:
    assert message in str(error(text))


# --- references and cycles ----------------------------------------------------------------------------
def test_undefined_network() -> None:
    err = error("services:\n  a:\n    image: x\n    networks: [nope]\n")
    assert (err.key, err.line) == ("services.a.networks.nope", 4)


def test_undefined_volume() -> None:
    err = error("services:\n  a:\n    image: x\n    volumes: ['nope:/data']\n")
    assert (err.key, err.line) == ("services.a.volumes.0", 4)


def test_undefined_dependency() -> None:
    err = error("services:\n  a:\n    image: x\n    depends_on: [b]\n")
    assert (err.key, err.line) == ("services.a.depends_on.b", 4)


def test_dependency_cycle() -> None:
    err = error(
        "services:\n  a:\n    image: x\n    depends_on: [b]\n"
        "  b:\n    image: x\n    depends_on:\n      c: {}\n"
        "  c:\n    image: x\n    depends_on: [a]\n"
    )
    assert "a -> b -> c -> a" in err.message
    assert (err.key, err.line) == ("services.a.depends_on", 4)


def test_self_dependency() -> None:
    assert "itself" in error("services:\n  a:\n    image: x\n    depends_on: [a]\n").message


def test_depends_on_conditions() -> None:
    project = load(
        """
        services:
          init: {image: x}
          db: {image: x}
          web:
            image: x
            depends_on:
              init: {condition: service_completed_successfully}
              db: {condition: service_healthy, required: true}
        """
    )
    assert list(project.services) == ["init", "db", "web"]
    assert project.services["web"].depends_on == (
        ("db", "service_healthy"),
        ("init", "service_completed_successfully"),
    )
    err = error(
        "services:\n  a: {image: x}\n  b:\n    image: x\n    depends_on:\n      a: {condition: soon}\n"
    )
    assert (err.key, err.line) == ("services.b.depends_on.a.condition", 6)


# --- profiles -------------------------------------------------------------------------------------------
def test_profiles_select_services() -> None:
    text = "services:\n  a: {image: x}\n  dbg: {image: x, profiles: [debug]}\n"
    assert list(load(text).services) == ["a"]
    assert list(load(text, profiles=["debug"]).services) == ["a", "dbg"]


def test_dependency_on_a_disabled_profile() -> None:
    err = error("services:\n  a:\n    image: x\n    depends_on: [d]\n  d: {image: x, profiles: [debug]}\n")
    assert "profiles" in err.message
    assert err.key == "services.a.depends_on.d"


# --- ports, volumes, resources ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [Port(80)]),
        ("8080:80", [Port(80, 8080)]),
        ("127.0.0.1:8080:80/udp", [Port(80, 8080, "127.0.0.1", "udp")]),
        ("127.0.0.1::80", [Port(80, None, "127.0.0.1")]),
        ("[::1]:53:53", [Port(53, 53, "::1")]),
        ("9000-9001:8000-8001", [Port(8000, 9000), Port(8001, 9001)]),
    ],
)
def test_short_ports(spec: str, expected: list[Port]) -> None:
    assert (
        list(load(f"services:\n  a:\n    image: x\n    ports: ['{spec}']\n").services["a"].ports) == expected
    )


def test_unquoted_port_pair_is_not_base_60() -> None:
    # YAML 1.1 reads an unquoted 22:22 as the integer 1342; compose means the port pair.
    project = load("services:\n  a:\n    image: x\n    ports:\n      - 22:22\n      - 8080\n")
    assert project.services["a"].ports == (Port(22, 22), Port(8080))


def test_long_ports() -> None:
    project = load(
        "services:\n  a:\n    image: x\n    ports:\n"
        "      - {target: 80, published: '8080', host_ip: 127.0.0.1}\n"
    )
    assert project.services["a"].ports == (Port(80, 8080, "127.0.0.1"),)


@pytest.mark.parametrize("spec", ["'80:70000'", "'1-3:1-2'", "'abc'", "'80/icmp'"])
def test_bad_ports(spec: str) -> None:
    err = error(f"services:\n  a:\n    image: x\n    ports:\n      - {spec}\n")
    assert (err.key, err.line) == ("services.a.ports.0", 5)


def test_volumes_short_and_long() -> None:
    project = load(
        """
        services:
          a:
            image: x
            volumes:
              - data:/data:ro
              - /srv/x:/x
              - /anon
              - {type: bind, source: /etc/ssl, target: /ssl, read_only: true}
              - {type: volume, source: data, target: /d2, volume: {nocopy: true}}
              - {type: tmpfs, target: /t, tmpfs: {size: 1m}}
            tmpfs: [/run, "/tmp:size=1m"]
        volumes:
          data: {labels: {a: b}}
        """
    )
    assert project.services["a"].mounts == (
        Mount("volume", "/data", "data", read_only=True),
        Mount("bind", "/x", "/srv/x"),
        Mount("volume", "/anon"),
        Mount("bind", "/ssl", "/etc/ssl", read_only=True),
        Mount("volume", "/d2", "data", nocopy=True),
        Mount("tmpfs", "/t", tmpfs_size=1 << 20),
        Mount("tmpfs", "/run"),
        Mount("tmpfs", "/tmp"),
    )
    assert project.volumes["data"].labels == (("a", "b"),)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("./data:/data", "absolute host path"),
        ("~/x:/data", "absolute host path"),
        ("/x:relative", "must be absolute"),
        ("/x:/y:rx", "unknown volume mode"),
    ],
)
def test_bad_volumes(spec: str, message: str) -> None:
    err = error(f"services:\n  a:\n    image: x\n    volumes: ['{spec}']\n")
    assert message in err.message
    assert (err.key, err.line) == ("services.a.volumes.0", 4)


def test_external_and_named_objects() -> None:
    project = load(
        """
        services:
          a: {image: x, networks: [edge, back], volumes: ['cache:/c']}
        networks:
          edge: {external: true}
          back: {name: shared_back, driver: bridge, internal: true}
        volumes:
          cache: {external: true, name: the-cache}
        """
    )
    assert project.networks["edge"].name == "edge"
    assert project.networks["edge"].external
    assert project.networks["back"].name == "shared_back"
    assert project.volumes["cache"].name == "the-cache"
    err = error("services:\n  a: {image: x}\nnetworks:\n  e: {external: true, driver: bridge}\n")
    assert (err.key, err.line) == ("networks.e", 4)


def test_network_aliases_and_mode() -> None:
    project = load(
        "services:\n  a:\n    image: x\n    networks:\n      back: {aliases: [db, main]}\n"
        "networks:\n  back:\n"
    )
    assert project.services["a"].networks == (("back", ("db", "main")),)
    none = load("services:\n  a: {image: x, network_mode: none}\n")
    assert none.services["a"].networks == ()
    assert "default" not in none.networks
    err = error("services:\n  a: {image: x, network_mode: 'container:b'}\n")
    assert err.key == "services.a.network_mode"


def test_resources_and_misc() -> None:
    project = load(
        """
        services:
          a:
            image: x
            restart: on-failure:3
            user: 1000
            working_dir: /w
            hostname: h
            cap_add: [NET_ADMIN]
            cap_drop: [ALL]
            ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 64}
            logging: {driver: json-file, options: {max-size: 10m}}
            deploy: {resources: {limits: {cpus: 1.5, memory: 1g}}}
            healthcheck: {test: 'wget -q localhost', interval: 1m30s, timeout: 500ms, retries: 3}
        """
    )
    a = project.services["a"]
    assert (a.restart, a.user, a.working_dir, a.hostname) == ("on-failure:3", "1000", "/w", "h")
    assert a.ulimits == (("nofile", 1024, 2048), ("nproc", 64, 64))
    assert (a.log_driver, a.log_options) == ("json-file", (("max-size", "10m"),))
    assert (a.nano_cpus, a.memory) == (1_500_000_000, 1 << 30)
    assert a.healthcheck is not None
    assert a.healthcheck.test == ("CMD-SHELL", "wget -q localhost")
    assert (a.healthcheck.interval_ns, a.healthcheck.timeout_ns) == (90 * 10**9, 5 * 10**8)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("restart: sometimes", "services.a.restart"),
        ("deploy: {resources: {limits: {memory: lots}}}", "services.a.deploy.resources.limits.memory"),
        ("deploy: {resources: {limits: {cpus: many}}}", "services.a.deploy.resources.limits.cpus"),
        ("healthcheck: {test: [CMD, 'true'], interval: soon}", "services.a.healthcheck.interval"),
        ("healthcheck: {test: [SHELL, 'true']}", "services.a.healthcheck.test"),
        ("ulimits: {nofile: {soft: 10, hard: 5}}", "services.a.ulimits.nofile"),
        ("image: 'bad image'", "services.a.image"),
        ("command: 'echo \"unclosed'", "services.a.command"),
    ],
)
def test_bad_values(line: str, key: str) -> None:
    err = error(f"services:\n  a:\n    image: x\n    {line}\n".replace("image: x\n    image:", "image:"))
    assert err.key == key
    assert err.line == 4 or err.line == 3


# --- bounds ----------------------------------------------------------------------------------------------
def test_alias_bomb_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    bomb = "\n".join(lines) + "\nservices:\n  a:\n    image: x\n    labels: {bomb: *a9}\n"
    assert len(bomb) < 2000
    assert "more than" in error(bomb).message


def test_oversized_text() -> None:
    text = "services:\n  a: {image: x}\n" + "#" * (1 << 20)
    assert "larger than" in error(text).message


def test_extension_fields_and_merge_keys() -> None:
    project = load(
        "x-base: &base\n  image: x\n  restart: always\nservices:\n  a:\n    <<: *base\n    user: '1'\n"
    )
    assert (project.services["a"].image, project.services["a"].restart) == ("x", "always")
