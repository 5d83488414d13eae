"""Validation of untrusted certificate signing requests from enrolling agents."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

MAX_CSR_BYTES = 16 * 1024

_ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
_MIN_RSA_BITS = 2048
# Past 4096 bits an RSA key buys no security anyone needs and costs the CA CPU on every signature check
# (and OpenSSL accepts moduli up to 16 kbit, whose checks a flood of enrolments could make expensive).
_MAX_RSA_BITS = 4096
_RSA_EXPONENT = 65537


class CsrError(ValueError):
    """A CSR was rejected; the message is safe to show to the client."""


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse and vet a PEM CSR, raising CsrError for anything we will not sign."""
    if len(data) > MAX_CSR_BYTES:
        raise CsrError(f"CSR is too large (limit {MAX_CSR_BYTES} bytes)")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError:
        raise CsrError("CSR is not a PEM certificate request") from None
    try:
        key = csr.public_key()
    except Exception:  # unsupported or malformed key algorithms surface as assorted errors
        raise CsrError("CSR public key is malformed or of an unsupported type") from None
    # Vet the key before the signature so we never do expensive work for keys we refuse anyway.
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _ALLOWED_CURVES):
            raise CsrError(f"CSR key curve {key.curve.name} is not allowed (use P-256 or P-384)")
    elif isinstance(key, rsa.RSAPublicKey):
        if not _MIN_RSA_BITS <= key.key_size <= _MAX_RSA_BITS:
            raise CsrError(
                f"CSR RSA key is {key.key_size} bits; {_MIN_RSA_BITS} to {_MAX_RSA_BITS} bits are allowed"
            )
        if key.public_numbers().e != _RSA_EXPONENT:
            raise CsrError(f"CSR RSA key must use the public exponent {_RSA_EXPONENT}")
    else:
        raise CsrError("CSR key type is not allowed (use EC P-256/P-384 or RSA 2048-4096)")
    try:
        valid = csr.is_signature_valid
    except Exception:  # e.g. an unsupported signature algorithm; treat like a bad signature
        valid = False
    if not valid:
        raise CsrError("CSR signature is invalid")
    return csr
