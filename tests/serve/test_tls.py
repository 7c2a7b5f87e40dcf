"""``oar serve --tls-cert/--tls-key``: HTTPS and TLS gRPC against a self-signed certificate made at test time.

Clients verify the server against that certificate (never ``verify=False``); plain HTTP and plaintext gRPC to
the TLS ports fail; the CLI refuses an unpaired or unusable certificate with one line and exit code 1.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest

from oar._core.errors import InvalidInputError, ServerUnreachableError
from oar.client import AsyncModelClient, ModelClient
from oar.protocol import grpc_service_pb2 as pb
from oar.protocol import grpc_service_pb2_grpc as pb_grpc
from oar.protocol.raw import from_raw, to_raw
from oar.runtime import load_runtime
from oar.serve.process import ServerProcess

X = np.arange(8, dtype=np.float32).reshape(2, 4)
BODY = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()}]})


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """An EC P-256 key and a self-signed certificate for 127.0.0.1 and localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oar test server")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(numeric_models, certificate) -> Iterator[ServerProcess]:
    cert, key = certificate
    with ServerProcess(["num-fp32:1"], tls_cert=cert, tls_key=key) as process:
        yield process


def _expected(hub) -> np.ndarray:
    """What num-fp32 version 1 computes for X, run locally."""
    return load_runtime(hub.open_package("num-fp32", 1)).infer({"x": X})["output"]


def _trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


# --- REST over HTTPS ----------------------------------------------------------------------------------------
def test_https_inference_verifies_against_the_server_certificate(tls_server, certificate, hub) -> None:
    cert, _ = certificate
    assert tls_server.endpoint.startswith("https://")
    url = f"{tls_server.endpoint}/v2/models/num-fp32/versions/1/infer"
    with httpx.Client(verify=_trusting(cert), timeout=10) as client:
        assert client.get(f"{tls_server.endpoint}/v2/health/ready").status_code == 200
        response = client.post(url, content=BODY)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["shape"] == [2, 3]
    np.testing.assert_allclose(np.asarray(output["data"]).reshape(2, 3), _expected(hub), rtol=1e-5, atol=1e-6)


def test_https_is_refused_by_a_client_that_does_not_trust_the_certificate(tls_server) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_server.endpoint}/v2/health/ready", timeout=10)  # system roots only


def test_plain_http_to_the_tls_port_fails(tls_server) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{tls_server.host}:{tls_server.port}/v2/health/ready", timeout=5)


# --- gRPC over TLS ------------------------------------------------------------------------------------------
def _grpc_request() -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="num-fp32", model_version="1")
    message.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    message.raw_input_contents.append(to_raw(X, "FP32"))
    return message


def test_tls_grpc_model_infer_round_trip(tls_server, certificate, hub) -> None:
    cert, _ = certificate
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(tls_server.grpc_address, credentials) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_grpc_request(), timeout=10)
    out = answer.outputs[0]
    assert out.name == "output" and list(out.shape) == [2, 3]
    result = from_raw(answer.raw_output_contents[0], out.datatype, list(out.shape), out.name)
    np.testing.assert_allclose(result, _expected(hub), rtol=1e-5, atol=1e-6)


def test_plaintext_grpc_to_the_tls_port_fails(tls_server) -> None:
    with grpc.insecure_channel(tls_server.grpc_address) as channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_grpc_request(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


# --- ModelClient ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["https", "grpcs"])
def test_model_client_over_tls_with_a_ca_cert(tls_server, certificate, hub, protocol) -> None:
    cert, _ = certificate
    endpoint = tls_server.endpoint if protocol == "https" else tls_server.grpc_endpoint
    assert endpoint.startswith(f"{protocol}://")
    with ModelClient(endpoint, timeout=10, ca_cert=cert) as client:
        assert client.is_ready("num-fp32:1")
        outputs = client.infer("num-fp32:1", {"x": X})
    np.testing.assert_allclose(outputs["output"], _expected(hub), rtol=1e-5, atol=1e-6)


def test_async_model_client_over_https_with_a_ca_cert(tls_server, certificate) -> None:
    import asyncio

    cert, _ = certificate

    async def run() -> dict[str, np.ndarray]:
        async with AsyncModelClient(tls_server.endpoint, timeout=10, ca_cert=cert) as client:
            return await client.infer("num-fp32:1", {"x": X})

    assert asyncio.run(run())["output"].shape == (2, 3)


def test_model_client_without_the_ca_cert_does_not_trust_the_server(tls_server, certificate) -> None:
    cert, _ = certificate
    with ModelClient(tls_server.endpoint, timeout=5) as client, pytest.raises(ServerUnreachableError):
        client.infer("num-fp32:1", {"x": X})
    with pytest.raises(InvalidInputError, match="https:// and grpcs://"):
        ModelClient(f"http://{tls_server.host}:{tls_server.port}", ca_cert=cert)
    with pytest.raises(InvalidInputError, match="cannot read ca_cert"):
        ModelClient(tls_server.endpoint, ca_cert=cert.parent / "missing.pem")


# --- CLI ------------------------------------------------------------------------------------------------------
def _oar_serve(*args: str) -> tuple[int, str]:
    """Exit code and output (stderr, then stdout) of ``oar serve ARGS``, line wrapping undone."""
    command = [sys.executable, "-m", "oar.cli.main", "serve", "--port", "1", "--grpc-port", "0", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return result.returncode, " ".join((result.stderr + result.stdout).split())


@pytest.mark.parametrize("flag", ["--tls-cert", "--tls-key"])
def test_cli_refuses_half_a_tls_pair(certificate, flag) -> None:
    cert, key = certificate
    code, output = _oar_serve(flag, str(cert if flag == "--tls-cert" else key))
    assert code == 1
    assert output == "error: --tls-cert and --tls-key go together (a PEM certificate and its key)"


def test_cli_refuses_a_key_that_does_not_match_the_certificate(certificate, tmp_path) -> None:
    cert, _ = certificate
    _, other_key = _self_signed(tmp_path)
    code, output = _oar_serve("--tls-cert", str(cert), "--tls-key", str(other_key))
    assert code == 1 and output.startswith("error: cannot serve TLS") and "Traceback" not in output, output
    code, output = _oar_serve("--tls-cert", str(tmp_path / "none.pem"), "--tls-key", str(other_key))
    assert code == 1 and output == f"error: --tls-cert {tmp_path / 'none.pem'}: no such file", output
