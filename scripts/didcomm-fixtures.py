#!/usr/bin/env python3
"""didcomm-fixtures.py - cross-check acaload's Rust DIDComm v1 code against ACA-Py 1.7's own code.

Run with ACA-Py's venv python (it imports acapy_agent, aries_askar, did_peer_2, did_peer_4):

  generate OUTDIR   write JSON fixtures made by ACA-Py's code paths from fixed seeds:
                    AskarWallet.pack_message (authcrypt 1 KB basicmessage, anoncrypt, multi-recipient),
                    V1PackWireFormat.pack with routing keys (forward wrapping, 1 and 2 hops),
                    did_peer_4.encode / encode_short, did_peer_2.generate / resolve, and a
                    did_rotate~attach signed by AttachDecoratorData.sign.
  unpack FILE       read what Rust produced and check it with ACA-Py: every envelope in "cases" is opened
                    with AskarWallet.unpack_message (following routing/1.0/forward layers, each parsed by
                    ACA-Py's Forward schema), every DID in "dids" is resolved with did_peer_4/did_peer_2 and
                    parsed by pydid strictly, every attachment in "attachments" is verified by
                    AttachDecoratorData.verify. Prints one JSON object; exits 1 if anything failed.

Seeds are 32-character ASCII strings: ACA-Py's create_key(ED25519, seed) takes them as the Ed25519 secret.
"""

import asyncio
import json
import os
import sys
import traceback
import uuid

from acapy_agent.askar.profile import AskarProfile
from acapy_agent.askar.store import AskarStoreConfig
from acapy_agent.config.injection_context import InjectionContext
from acapy_agent.messaging.decorators.attach_decorator import AttachDecorator
from acapy_agent.protocols.routing.v1_0.messages.forward import Forward
from acapy_agent.transport.pack_format import V1PackWireFormat
from acapy_agent.wallet.base import BaseWallet
from acapy_agent.wallet.key_type import ED25519

SEEDS = {
    "alice": "acaload-fixture-alice-0000000001",
    "bob": "acaload-fixture-bob-000000000002",
    "carol": "acaload-fixture-carol-0000000003",
    "mediator": "acaload-fixture-mediator-0000004",
    "mediator2": "acaload-fixture-mediator2-000005",
    "inviter": "acaload-fixture-inviter-00000006",
}
FORWARD_TYPE = "https://didcomm.org/routing/1.0/forward"
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip "
    "ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu "
    "fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt "
    "mollit anim id est laborum. "
)


async def open_profile() -> AskarProfile:
    """An in-memory askar store, as acapy_agent.utils.testing.create_test_profile makes (without pytest)."""
    name = str(uuid.uuid4())
    config = AskarStoreConfig(
        {"name": name, "key": "5BngFuBpS4wjFfVFCtPqoix3ZXG2XR8XJ7qosUzMak7R", "key_derivation_method": "RAW",
         "auto_recreate": True}
    )
    opened = await config.open_store(provision=True, in_memory=True)
    settings = {"wallet.type": "askar", "wallet.id": name}
    return AskarProfile(opened=opened, context=InjectionContext(settings=settings))


async def add_keys(session, seeds) -> list:
    wallet = session.inject(BaseWallet)
    verkeys = []
    for seed in seeds:
        info = await wallet.create_key(ED25519, seed=seed)
        verkeys.append(info.verkey)
    return verkeys


def write(outdir: str, name: str, data: dict):
    path = os.path.join(outdir, name)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path}")


async def generate(outdir: str):
    import did_peer_2
    import did_peer_4
    from did_peer_4.input_doc import KeySpec as KeySpec4, input_doc_from_keys_and_services
    from aries_askar import Key, KeyAlg
    from base58 import b58decode, b58encode

    os.makedirs(outdir, exist_ok=True)
    profile = await open_profile()
    async with profile.session() as session:
        wallet = session.inject(BaseWallet)
        vk = dict(zip(SEEDS, await add_keys(session, SEEDS.values())))
        keys = {n: {"seed": SEEDS[n], "verkey": vk[n]} for n in SEEDS}

        # 1. authcrypt 1 KB basicmessage alice -> bob
        basic = {"@type": "https://didcomm.org/basicmessage/1.0/message", "@id": "0aefd0c1-02ad-478b-88d1-908ca6a2fce0",
                 "sent_time": "2026-11-28T18:30:41.000000Z", "content": (LOREM * 3)[:1000]}
        plaintext = json.dumps(basic)
        env = await wallet.pack_message(plaintext, [vk["bob"]], vk["alice"])
        write(outdir, "authcrypt.json", {"keys": keys, "recipient": "bob", "sender": "alice",
                                         "plaintext": plaintext, "envelope": json.loads(env)})

        # 2. anoncrypt (a trust ping) -> bob
        ping = json.dumps({"@type": "https://didcomm.org/trust_ping/1.0/ping", "@id": "9cf5cbd5",
                           "response_requested": False, "~transport": {"return_route": "all"}})
        env = await wallet.pack_message(ping, [vk["bob"]], None)
        write(outdir, "anoncrypt.json", {"keys": keys, "recipient": "bob", "sender": None,
                                         "plaintext": ping, "envelope": json.loads(env)})

        # 3. multi-recipient authcrypt alice -> [carol, bob, mediator]
        env = await wallet.pack_message(plaintext, [vk["carol"], vk["bob"], vk["mediator"]], vk["alice"])
        write(outdir, "multi_recipient.json", {"keys": keys, "recipients": ["carol", "bob", "mediator"],
                                               "sender": "alice", "plaintext": plaintext, "envelope": json.loads(env)})

        # 4. forward wrapping exactly as ACA-Py sends to a mediated peer (V1PackWireFormat.pack)
        fmt = V1PackWireFormat()
        for name, routing in (("forward.json", ["mediator"]), ("forward_two_hops.json", ["mediator", "mediator2"])):
            env = await fmt.pack(session, plaintext, [vk["bob"]], [vk[r] for r in routing], vk["alice"])
            write(outdir, name, {"keys": keys, "recipient": "bob", "sender": "alice", "routing": routing,
                                 "plaintext": plaintext, "envelope": json.loads(env)})

        # 5. did_rotate~attach signed by the inviter key (AttachDecoratorData.sign)
        inviter_pub = b58decode(vk["inviter"])
        inviter_x = b58encode(
            Key.from_public_bytes(KeyAlg.ED25519, inviter_pub).convert_key(KeyAlg.X25519).get_public_bytes()
        ).decode()
        rotated = did_peer_4.encode(credo_doc(vk["alice"], b58encode(
            Key.from_public_bytes(KeyAlg.ED25519, b58decode(vk["alice"])).convert_key(KeyAlg.X25519)
            .get_public_bytes()).decode(), "http://127.0.0.1:4700", []))
        attach = AttachDecorator.data_base64_string(rotated)
        await attach.data.sign(vk["inviter"], wallet)
        write(outdir, "did_rotate.json", {"keys": keys, "signer": "inviter", "did": rotated,
                                          "attach": attach.serialize()})

    # 6. did:peer:4 of Credo-style input docs (the edge agent's own DIDs) and of ACA-Py's own style
    cases = []
    for who, endpoint, routing in (
        ("alice", "didcomm:transport/queue", []),
        ("bob", "http://127.0.0.1:4700",
         ["did:key:z6MkuWiMbuiVaEwwpiGr5CV8Zzn3YZCRf6n9ZJEqucqTXze6#z6MkuWiMbuiVaEwwpiGr5CV8Zzn3YZCRf6n9ZJEqucqTXze6"]),
        ("carol", "http://例え.jp/ü", []),
    ):
        x_b58 = b58encode(Key.from_public_bytes(KeyAlg.ED25519, b58decode(vk[who])).convert_key(KeyAlg.X25519)
                          .get_public_bytes()).decode()
        doc = credo_doc(vk[who], x_b58, endpoint, routing)
        cases.append({"style": "credo", "verkey": vk[who], "x25519": x_b58, "endpoint": endpoint, "routing_keys": routing,
                      "input_doc": doc, "long": did_peer_4.encode(doc), "short": did_peer_4.encode_short(doc)})
    # ACA-Py's create_did_peer_4 shape (what a mediator answers with): Multikey #key-0, two services
    ed = Key.from_public_bytes(KeyAlg.ED25519, b58decode(vk["mediator"]))
    multikey = "z" + b58encode(b"\xed\x01" + ed.get_public_bytes()).decode()
    services = [{"id": f"#didcomm-{i}", "type": "did-communication", "recipientKeys": ["#key-0"], "routingKeys": [],
                 "serviceEndpoint": ep, "priority": i} for i, ep in enumerate(["http://127.0.0.1:4700", "ws://127.0.0.1:4702"])]
    doc = input_doc_from_keys_and_services(
        keys=[KeySpec4(multikey=multikey, relationships=["authentication", "keyAgreement"])], services=services)
    cases.append({"style": "acapy", "verkey": vk["mediator"], "endpoint": "http://127.0.0.1:4700", "routing_keys": [],
                  "input_doc": doc, "long": did_peer_4.encode(doc), "short": did_peer_4.encode_short(doc),
                  "resolved": did_peer_4.resolve(did_peer_4.encode(doc))})
    write(outdir, "did_peer_4.json", {"cases": cases})

    # 7. did:peer:2 as ACA-Py's create_did_peer_2 builds it, and did_peer_2.resolve's document
    xk = Key.from_secret_bytes(KeyAlg.X25519, b"acaload-fixture-x25519-000000007")
    peer2_services = [{"id": "#didcomm-0", "type": "did-communication", "priority": 0, "recipientKeys": ["#key-1"],
                       "routingKeys": [], "serviceEndpoint": "http://127.0.0.1:4700"}]
    did2 = did_peer_2.generate(
        [did_peer_2.KeySpec.verification(multikey),
         did_peer_2.KeySpec.key_agreement("z" + b58encode(b"\xec\x01" + xk.get_public_bytes()).decode())],
        peer2_services,
    )
    write(outdir, "did_peer_2.json", {"did": did2, "verkey": vk["mediator"], "resolved": did_peer_2.resolve(did2)})
    await profile.close()


def credo_doc(verkey: str, x_b58: str, endpoint: str, routing_keys: list) -> dict:
    """Credo's did:peer:4 input doc (key order as Credo / the probe write it)."""
    return {
        "@context": ["https://w3id.org/did/v1"],
        "service": [{"id": "#inline-0", "serviceEndpoint": endpoint, "type": "did-communication", "priority": 0,
                     "recipientKeys": ["#key-1"], "routingKeys": routing_keys}],
        "authentication": [{"id": "#key-1", "type": "Ed25519VerificationKey2018", "publicKeyBase58": verkey}],
        "keyAgreement": [{"id": "#key-2", "type": "X25519KeyAgreementKey2019", "publicKeyBase58": x_b58}],
    }


async def unpack(path: str) -> int:
    import did_peer_2
    import did_peer_4
    import pydid

    with open(path) as f:
        spec = json.load(f)
    out = {"cases": {}, "dids": {}, "attachments": {}}
    failed = False
    for case in spec.get("cases", []):
        name = case["name"]
        try:
            profile = await open_profile()
            async with profile.session() as session:
                wallet = session.inject(BaseWallet)
                await add_keys(session, case["seeds"])
                env = case["envelope"]
                body = (env if isinstance(env, str) else json.dumps(env)).encode()
                layers = []
                while True:
                    message, sender, recipient = await wallet.unpack_message(body)
                    parsed = json.loads(message)
                    layer = {"sender_verkey": sender, "recipient_verkey": recipient, "type": parsed.get("@type")}
                    layers.append(layer)
                    if parsed.get("@type") != FORWARD_TYPE:
                        break
                    fwd = Forward.deserialize(parsed)  # ACA-Py's own schema for the forward message
                    layer["to"] = fwd.to
                    body = json.dumps(fwd.msg).encode()
                    kids = V1PackWireFormat().get_recipient_keys(body)
                    if fwd.to not in kids:
                        raise ValueError(f"forward.to {fwd.to} is not a recipient of the inner envelope {kids}")
                out["cases"][name] = {"ok": True, "plaintext": message, "sender_verkey": sender,
                                      "recipient_verkey": recipient, "layers": layers}
            await profile.close()
        except Exception as e:  # noqa: BLE001 - report every failure, then exit non-zero
            failed = True
            out["cases"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
    for did in spec.get("dids", []):
        try:
            if did.startswith("did:peer:4"):
                doc = did_peer_4.resolve(did)
            else:
                doc = did_peer_2.resolve(did)
            pydid.deserialize_document(doc, strict=True)
            out["dids"][did] = {"ok": True, "resolved": doc}
        except Exception as e:  # noqa: BLE001
            failed = True
            out["dids"][did] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    for item in spec.get("attachments", []):
        name = item["name"]
        try:
            profile = await open_profile()
            async with profile.session() as session:
                wallet = session.inject(BaseWallet)
                attach = AttachDecorator.deserialize(item["attach"])
                ok = await attach.data.verify(wallet, item.get("signer_verkey"))
                signed = attach.data.signed.decode() if ok else None
                out["attachments"][name] = {"ok": bool(ok), "signed": signed}
                failed = failed or not ok
            await profile.close()
        except Exception as e:  # noqa: BLE001
            failed = True
            out["attachments"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out, indent=1, ensure_ascii=False))
    return 1 if failed else 0


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("generate", "unpack"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "generate":
        asyncio.run(generate(sys.argv[2]))
        return 0
    return asyncio.run(unpack(sys.argv[2]))


if __name__ == "__main__":
    sys.exit(main())
