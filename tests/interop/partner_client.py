#!/usr/bin/env python3
"""Independent RFC 9421 interop client for the alliance gateway.

This client deliberately shares no code with the gateway: it signs requests and
verifies responses with the third-party PyPI package ``http-message-signatures``
(3.0.0), sends them with ``requests`` over mutual TLS, and checks the gateway's
documented behaviour. If the gateway and this package disagree about any part
of RFC 9421 or RFC 9530, a check here fails.

Usage:
    partner_client.py BUNDLE_DIR BASE_URL [SECOND_BUNDLE_DIR]

BUNDLE_DIR is a partner bundle written by ``alliance-gateway onboard-partner``
(ca.pem, client.pem, client.key, signing.key, partner.json). BASE_URL is the
gateway's HTTPS origin, e.g. https://127.0.0.1:18543 (partner.json's
gateway_url is ignored because CI runs the gateway on a throwaway port).
With SECOND_BUNDLE_DIR, the cross-partner key-identity check also runs.

Prints one line per check and a final "N passed, M failed" line; exits 1 if any
check failed, 2 on a usage or setup error. Private keys and signature values
are never printed.
"""

import argparse
import base64
import copy
import datetime
import json
import secrets
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import http_sf  # Structured Fields parser the package itself depends on
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)

# The gateway's request profile (alliance-sig-v1): these three derived
# components are always covered; bodies add content-type and content-digest.
BASE_COMPONENTS = ("@method", "@path", "@query")
BODY_COMPONENTS = BASE_COMPONENTS + ("content-type", "content-digest")
SIGNATURE_LABEL = "sig"

# What every gateway response signature must cover. The last component binds
# the response to the request's own signature (RFC 9421 section 2.4), so a
# response cannot be replayed as the answer to a different request.
RESPONSE_BINDING = '"signature";req;key="sig"'
RESPONSE_BASE_COMPONENTS = ("@status", "content-type", "content-digest")
RESPONSE_COMPONENTS = RESPONSE_BASE_COMPONENTS + (RESPONSE_BINDING,)

# Fields that must never leave the gateway: members are only ever identified
# to partners by an opaque member_ref.
FORBIDDEN_KEYS = {"card_no", "phone", "birth_month"}

GOLD_CARD = "8800123456"
GOLD_PHONE = "13800138000"
# Same format as the sample cards but absent from examples/data/members.csv.
UNKNOWN_CARD = "8800999999"

TIMEOUT = 15


class CheckFailed(Exception):
    """A gateway behaviour did not match the contract."""


class SetupError(Exception):
    """The client cannot run at all (bad arguments or bundle), as opposed to a failed check."""


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


class BundleKeyResolver(HTTPSignatureKeyResolver):
    """Private key from one partner bundle; public keys from the gateway JWKS.

    Only keys the partner was given at onboarding are trusted: a response signed
    under any other keyid fails verification because resolve_public_key()
    returns None for it.
    """

    def __init__(self, key_id, private_key, gateway_jwks):
        self.key_id = key_id
        self._private_key = private_key
        self._public_keys = {}
        for jwk in gateway_jwks.get("keys", []):
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "kid" in jwk:
                raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
                self._public_keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(raw)

    def resolve_private_key(self, key_id):
        if key_id != self.key_id:
            raise KeyError(f"no private key for {key_id!r} in this bundle")
        return self._private_key

    def resolve_public_key(self, key_id):
        return self._public_keys.get(key_id)


class Bundle:
    def __init__(self, directory):
        self.dir = Path(directory)
        for name in ("ca.pem", "client.pem", "client.key", "signing.key", "partner.json"):
            if not (self.dir / name).is_file():
                raise SetupError(f"{self.dir / name} is missing")
        try:
            info = json.loads((self.dir / "partner.json").read_text())
            self.partner_code = info["partner_code"]
            self.key_id = info["key_id"]
            self.gateway_keys = info["gateway_keys"]
        except (ValueError, KeyError, TypeError) as e:
            raise SetupError(f"{self.dir / 'partner.json'} is not a partner bundle descriptor: {e!r}") from e
        try:
            key = load_pem_private_key((self.dir / "signing.key").read_bytes(), password=None)
        except (ValueError, TypeError) as e:
            # Deliberately not echoing the exception text: it could quote key material.
            raise SetupError(f"{self.dir / 'signing.key'} is not an unencrypted PEM private key") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise SetupError(f"{self.dir / 'signing.key'} is not an Ed25519 key")
        self.resolver = BundleKeyResolver(self.key_id, key, self.gateway_keys)
        self.signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=self.resolver)

    @property
    def tls_cert(self):
        return (str(self.dir / "client.pem"), str(self.dir / "client.key"))

    @property
    def ca(self):
        return str(self.dir / "ca.pem")


class Client:
    """Sends requests over one bundle's mTLS identity, signing with any bundle's key."""

    def __init__(self, tls_bundle, base_url):
        self.tls = tls_bundle
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.cert = tls_bundle.tls_cert
        self.session.verify = tls_bundle.ca
        # The gateway is local: ignore proxy variables, .netrc and
        # REQUESTS_CA_BUNDLE, which would otherwise override verify=ca.pem.
        self.session.trust_env = False
        # Content-Digest covers the bytes on the wire; asking for identity keeps
        # response.content identical to them (requests transparently gunzips).
        self.session.headers["Accept-Encoding"] = "identity"

    def prepare(self, method, path, body_obj=None, signer_bundle=None):
        """Build and sign a request; returns the PreparedRequest, ready to send."""
        signer_bundle = signer_bundle or self.tls
        body = None
        headers = {}
        if body_obj is not None:
            body = json.dumps(body_obj, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        prepared = self.session.prepare_request(
            requests.Request(method, self.base_url + path, headers=headers, data=body)
        )
        # Passing body= makes the package compute Content-Digest (RFC 9530,
        # sha-256) itself; it is already listed in BODY_COMPONENTS, so the
        # covered order matches the profile exactly.
        signer_bundle.signer.sign(
            prepared,
            key_id=signer_bundle.key_id,
            label=SIGNATURE_LABEL,
            nonce=secrets.token_urlsafe(24),
            covered_component_ids=BODY_COMPONENTS if body is not None else BASE_COMPONENTS,
            body=body,
        )
        return prepared

    def send(self, prepared):
        return self.session.send(prepared, timeout=TIMEOUT)

    def verify_response(self, response, *, bound=True):
        """Verify the gateway's signature on a response; returns the VerifyResult.

        http-message-signatures 3.0.0 resolves "signature";req;key="sig" itself:
        for a message with status_code it resolves req-qualified components from
        message.request (requests' PreparedRequest) and serializes the named
        Dictionary member, giving ":<b64>:". No hand-built signature base line is
        needed.

        bound=False is for requests the gateway rejects before their signature
        verifies (digest mismatch, foreign key): with no verified request signature
        to bind to, those problems cover status, type and digest only (contract
        section 13). A replay's signature did verify, so its refusal is bound. If a
        response carries the binding, the binding must verify.
        """
        expect(
            "content-encoding" not in response.headers,
            f"response is content-encoded ({response.headers.get('content-encoding')}) despite identity",
        )
        expect("content-digest" in response.headers, f"HTTP {response.status_code} response has no Content-Digest")
        try:
            ContentDigest.verify(response.headers["content-digest"], response.content)
        except InvalidSignature as e:
            raise CheckFailed(f"response Content-Digest does not match its body: {e}") from e
        verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=self.tls.resolver)
        try:
            # body= makes the package re-check the *signed* digest against the body.
            results = verifier.verify(
                response,
                require_components=RESPONSE_COMPONENTS if bound else RESPONSE_BASE_COMPONENTS,
                body=response.content,
                max_age=datetime.timedelta(minutes=5),
            )
        except InvalidSignature as e:
            raise CheckFailed(f"HTTP {response.status_code} response signature does not verify: {e}") from e
        expect(len(results) == 1, f"expected one response signature, got {len(results)}")
        result = results[0]
        if RESPONSE_BINDING in result.covered_components:
            # Belt and braces, independently of the package: the bound value must be
            # the signature we sent, serialized as an sf-binary item ":<b64>:".
            sent, _params = http_sf.parse(response.request.headers["Signature"].encode(), tltype="dictionary")[
                SIGNATURE_LABEL
            ]
            expect(
                result.covered_components[RESPONSE_BINDING] == f":{base64.b64encode(sent).decode()}:",
                "response signature is not bound to this request's signature",
            )
            self._expect_binding_is_enforced(verifier, response)
        return result

    @staticmethod
    def _expect_binding_is_enforced(verifier, response):
        """Guard against a vacuous pass: the same response presented as the answer
        to a request with a different signature must NOT verify."""
        other_request = copy.copy(response.request)
        other_request.headers = response.request.headers.copy()
        other_request.headers["Signature"] = f"{SIGNATURE_LABEL}=:{base64.b64encode(bytes(64)).decode()}:"
        forged = SimpleNamespace(status_code=response.status_code, headers=response.headers, request=other_request)
        try:
            verifier.verify(forged, require_components=RESPONSE_COMPONENTS, max_age=None)
        except InvalidSignature:
            return
        raise CheckFailed("response signature verified against a different request signature")


def json_of(response):
    try:
        return response.json()
    except ValueError as e:
        raise CheckFailed(
            f"HTTP {response.status_code} body is not JSON (content-type {response.headers.get('content-type')})"
        ) from e


def expect_ok(response, what):
    if response.status_code != 200:
        raise CheckFailed(f"{what}: expected 200, got {response.status_code} {problem_summary(response)}")
    expect(
        response.headers.get("content-type", "").startswith("application/json"),
        f"{what}: content-type is {response.headers.get('content-type')!r}",
    )
    return json_of(response)


def expect_problem(client, response, status, code, *, bound=True):
    """An error must be a signed application/problem+json with the given code.

    Returns a short note on how the problem was signed, for the check's line."""
    if response.status_code != status:
        raise CheckFailed(f"expected {status} {code}, got {response.status_code} {problem_summary(response)}")
    expect(
        response.headers.get("content-type", "").startswith("application/problem+json"),
        f"problem content-type is {response.headers.get('content-type')!r}",
    )
    body = json_of(response)
    expect(body.get("code") == code, f"expected code {code!r}, got {body.get('code')!r}")
    expect(body.get("status") in (None, status), f"problem status member {body.get('status')!r} != {status}")
    result = client.verify_response(response, bound=bound)
    if RESPONSE_BINDING in result.covered_components:
        return "problem signed and bound to the request"
    return "problem signed (not bound: rejected during authentication)"


def problem_summary(response):
    try:
        body = response.json()
        return f"code={body.get('code')!r} detail={body.get('detail')!r}"
    except ValueError:
        return f"(non-JSON body, {len(response.content)} bytes)"


def forbidden_keys_in(value, path="$"):
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in FORBIDDEN_KEYS:
                found.append(f"{path}.{key}")
            found.extend(forbidden_keys_in(inner, f"{path}.{key}"))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found.extend(forbidden_keys_in(inner, f"{path}[{i}]"))
    return found


class Checks:
    def __init__(self, bundle, base_url, second_bundle=None):
        self.bundle = bundle
        self.second = second_bundle
        self.client = Client(bundle, base_url)
        # Shared between checks: (b) reuses (a)'s member_ref, (d) replays (a)'s request.
        self.gold_ref = None
        self.gold_request = None

    def a_verify_by_card(self):
        prepared = self.client.prepare("POST", "/v1/members/verify", {"card_no": GOLD_CARD})
        self.gold_request = prepared
        response = self.client.send(prepared)
        body = expect_ok(response, "verify by card_no")
        leaked = forbidden_keys_in(body)
        expect(not leaked, f"response leaks member PII keys: {', '.join(leaked)}")
        expect(body.get("tier") == "gold", f"tier is {body.get('tier')!r}, expected 'gold'")
        expect(isinstance(body.get("member_ref"), str) and body["member_ref"], "no member_ref in response")
        self.gold_ref = body["member_ref"]
        result = self.client.verify_response(response)
        return f"tier=gold, no PII, Content-Digest ok, signed by {result.parameters['keyid']} and bound to the request"

    def b_verify_by_phone_and_ref(self):
        expect(self.gold_ref is not None, "needs the member_ref from check a")
        response = self.client.send(self.client.prepare("POST", "/v1/members/verify", {"phone": GOLD_PHONE}))
        body = expect_ok(response, "verify by phone")
        self.client.verify_response(response)
        expect(body.get("member_ref") == self.gold_ref, "verify by phone returned a different member_ref")
        expect(not forbidden_keys_in(body), "verify by phone leaks member PII keys")
        response = self.client.send(self.client.prepare("POST", "/v1/members/verify", {"member_ref": self.gold_ref}))
        body = expect_ok(response, "verify by member_ref")
        self.client.verify_response(response)
        expect(body.get("member_ref") == self.gold_ref, "verify by member_ref returned a different member_ref")
        expect(body.get("tier") == "gold", f"verify by member_ref: tier is {body.get('tier')!r}")
        return "phone and member_ref resolve to the same member_ref"

    def c_keys(self):
        prepared = self.client.prepare("GET", "/v1/keys")
        expect("content-digest" not in prepared.headers, "a bodiless GET must not carry Content-Digest")
        response = self.client.send(prepared)
        body = expect_ok(response, "GET /v1/keys")
        result = self.client.verify_response(response)
        kid = result.parameters["keyid"]
        kids = [k.get("kid") for k in body.get("keys", []) if isinstance(k, dict)]
        expect(kid in kids, f"response keyid {kid!r} is not in the served JWKS {kids}")
        return f"JWKS lists {len(kids)} key(s) including the response keyid"

    def d_replay(self):
        expect(self.gold_request is not None, "needs the signed request from check a")
        # The very same PreparedRequest: identical headers, nonce, signature and body bytes.
        response = self.client.send(self.gold_request)
        note = expect_problem(self.client, response, 401, "replayed-request", bound=True)
        return f"401 replayed-request, {note}"

    def e_altered_body(self):
        prepared = self.client.prepare("POST", "/v1/members/verify", {"card_no": GOLD_CARD})
        # Tamper after signing, keeping the length so only the digest can catch it.
        tampered = json.dumps({"card_no": "8800123457"}, separators=(",", ":")).encode()
        expect(len(tampered) == len(prepared.body), "test bug: tampered body must keep its length")
        prepared.body = tampered
        response = self.client.send(prepared)
        note = expect_problem(self.client, response, 400, "invalid-content-digest", bound=False)
        return f"400 invalid-content-digest, {note}"

    def f_unknown_member(self):
        response = self.client.send(self.client.prepare("POST", "/v1/members/verify", {"card_no": UNKNOWN_CARD}))
        # The request itself is authentic, so this problem must carry the binding.
        note = expect_problem(self.client, response, 404, "member-not-found")
        return f"404 member-not-found, {note}"

    def g_key_identity_mismatch(self):
        # Partner 2's signing key, partner 1's TLS client certificate.
        prepared = self.client.prepare(
            "POST", "/v1/members/verify", {"card_no": GOLD_CARD}, signer_bundle=self.second
        )
        response = self.client.send(prepared)
        note = expect_problem(self.client, response, 403, "key-identity-mismatch", bound=False)
        return f"{self.second.key_id} over {self.bundle.partner_code}'s certificate: 403, {note}"

    def plan(self):
        checks = [
            ("a", "verify by card_no", self.a_verify_by_card),
            ("b", "verify by phone and member_ref", self.b_verify_by_phone_and_ref),
            ("c", "GET /v1/keys", self.c_keys),
            ("d", "replayed request rejected", self.d_replay),
            ("e", "altered body rejected", self.e_altered_body),
            ("f", "unknown member", self.f_unknown_member),
        ]
        if self.second is not None:
            checks.append(("g", "foreign signing key rejected", self.g_key_identity_mismatch))
        return checks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="partner bundle directory (TLS identity and signing key)")
    parser.add_argument("base_url", help="gateway origin, e.g. https://127.0.0.1:18543")
    parser.add_argument("second_bundle", nargs="?", help="another partner's bundle, for check g")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failed checks")
    args = parser.parse_args(argv)

    try:
        bundle = Bundle(args.bundle)
        second = Bundle(args.second_bundle) if args.second_bundle else None
        if second is not None and second.partner_code == bundle.partner_code:
            raise SetupError("the second bundle must belong to a different partner")
    except (SetupError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    checks = Checks(bundle, args.base_url, second)

    passed = failed = 0
    for letter, name, run in checks.plan():
        try:
            detail = run()
        except CheckFailed as e:
            failed += 1
            print(f"FAIL {letter}. {name}: {e}", flush=True)
        except requests.RequestException as e:
            failed += 1
            print(f"FAIL {letter}. {name}: transport error: {e}", flush=True)
        except Exception as e:  # an unexpected client-side error still counts as a failure
            failed += 1
            print(f"FAIL {letter}. {name}: {type(e).__name__}: {e}", flush=True)
            if args.verbose:
                traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {letter}. {name}: {detail}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
