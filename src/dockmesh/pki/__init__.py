"""Private CA, agent enrolment certificates and mutual-TLS contexts."""
