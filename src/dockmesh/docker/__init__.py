"""The Docker adapter: the only code that talks to Docker engines (via aiodocker).

Modules: ``engine`` (connect, identity), ``errors`` (DockerFailure, the one error type
callers see), ``containers``, ``images``, ``volumes``, ``networks``, ``stacks``,
``logs``, ``stats``, ``exec`` (interactive sessions), ``events``, and ``compose`` (apply a
compose project: deploy, down, stop, start, services; bodies in ``compose_config``).  Every function
takes an ``aiodocker.Docker`` client from :func:`dockmesh.docker.engine.connect`.
"""
