"""dockmesh: one server managing a fleet of Docker hosts through outbound agents."""

__version__ = "0.1.0"
