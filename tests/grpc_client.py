"""A gRPC client that is not tonic: Python's grpcio (gRPC C-core, with BoringSSL), for the
end-to-end tests in tests/grpc.rs. Calls one unary method of greeter.Greeter
(examples/proto/greeter.proto) over mutual TLS, with the one-string-field messages encoded by
hand so that no generated code or protoc is needed.

usage: grpc_client.py ADDR CA_PEM CERT_PEM|- KEY_PEM|- METHOD ARG
prints: "OK <reply's string field>" or "ERR <status code name> <details>"
"""
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_string_field(value):
    data = value.encode()
    return b"\x0a" + varint(len(data)) + data


def decode_string_field(message):
    if not message:
        return ""
    if message[0] != 0x0A:
        raise ValueError("unexpected field tag %r" % message[0])
    length, shift, i = 0, 0, 1
    while True:
        byte = message[i]
        length |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if not byte & 0x80:
            break
    return message[i : i + length].decode()


def main():
    addr, ca, cert, key, method, arg = sys.argv[1:7]
    with open(ca, "rb") as f:
        root = f.read()
    chain = private_key = None
    if cert != "-":
        with open(cert, "rb") as f:
            chain = f.read()
        with open(key, "rb") as f:
            private_key = f.read()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=private_key, certificate_chain=chain
    )
    # The server certificate is for localhost; the test server listens on 127.0.0.1.
    options = (("grpc.ssl_target_name_override", "localhost"),)
    with grpc.secure_channel(addr, credentials, options=options) as channel:
        call = channel.unary_unary(
            "/greeter.Greeter/" + method,
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            reply = call(encode_string_field(arg), timeout=20)
            print("OK", decode_string_field(reply))
        except grpc.RpcError as e:
            print("ERR", e.code().name, e.details())


if __name__ == "__main__":
    main()
