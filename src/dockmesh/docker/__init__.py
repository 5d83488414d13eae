"""The Docker adapter: the only code that talks to Docker engines (via aiodocker).

Modules: ``engine`` (connect, identity), ``errors`` (DockerFailure, the one error type
callers see), ``containers``, ``images``, ``volumes``, ``networks``, ``stacks``,
``logs``, ``stats``, ``exec`` (interactive sessions) and ``events``.  Every function
takes an ``aiodocker.Docker`` client from :func:`dockmesh.docker.engine.connect`.
"""
