//! Cost of one mediated 1 KB DIDComm v1 message on one core, beside the bare primitives it
//! cannot avoid, timed in the same run (`cargo bench --bench didcomm`). No criterion: plain
//! timed loops, a warm-up, and the median of several rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use acaload::didcomm::envelope::{pack_authcrypt, unpack};
use acaload::didcomm::forward::{Forward, ServiceTarget, pack_for_service};
use acaload::didcomm::keys::{KeyPair, PublicKey};
use acaload::didcomm::messages::{BasicMessage, to_plaintext};
use askar_crypto::alg::chacha20::{C20P, Chacha20Key};
use askar_crypto::alg::x25519::X25519KeyPair;
use askar_crypto::encrypt::KeyAeadInPlace;
use askar_crypto::encrypt::crypto_box::{
    crypto_box, crypto_box_open, crypto_box_seal, crypto_box_seal_open,
};
use askar_crypto::repr::{KeyGen, KeySecretBytes};

/// Median µs per call of `f` over 7 rounds of ~`budget`/7 each.
fn time<T>(budget: Duration, mut f: impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(30) {
        black_box(f());
        n += 1;
    }
    let per_round = ((budget.as_secs_f64() / 7.0) / (start.elapsed().as_secs_f64() / n as f64))
        .max(10.0) as u64;
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_round {
                black_box(f());
            }
            t.elapsed().as_secs_f64() * 1e6 / per_round as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[3]
}

fn c20p_key() -> Chacha20Key<C20P> {
    Chacha20Key::<C20P>::from_secret_bytes(&[7u8; 32]).expect("32-byte key")
}

fn aead_encrypt(key: &Chacha20Key<C20P>, data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(data.len() + 16);
    buf.extend_from_slice(data);
    key.encrypt_in_place(
        &mut buf,
        &[1u8; 12],
        b"aad-of-protected-header-64-bytes-aad-of-protected-header-64-byte",
    )
    .expect("encrypt");
    buf
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this is a smoke run
    // (every path once, no timing worth reading) so the test suite stays fast.
    let measuring = std::env::args().any(|a| a == "--bench");
    let budget = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if measuring { 1400 } else { 7 }),
    );
    let alice = KeyPair::from_seed(&[1; 32]);
    let bob = KeyPair::from_seed(&[2; 32]);
    let mediator = KeyPair::from_seed(&[3; 32]);
    let target = ServiceTarget::from_key_refs(
        &[bob.did_key()],
        &[mediator.did_key()],
        "http://127.0.0.1:4700",
    )
    .expect("target");
    let mut msg = BasicMessage::new("x".repeat(1000), Some("2026-11-28T18:30:41.000000Z".into()));
    msg.id = "0aefd0c1-02ad-478b-88d1-908ca6a2fce0".into();
    let plaintext = to_plaintext(&msg).expect("json");
    let outer = pack_for_service(&plaintext, &target, &alice).expect("pack");
    let inner = pack_authcrypt(&plaintext, &[bob.public_key()], &alice).expect("pack");
    let fwd_plain_len = unpack(outer.as_bytes(), &mediator)
        .expect("unpack")
        .plaintext
        .len();
    println!(
        "message {} B plaintext -> {} B authcrypt -> {} B forward-wrapped (forward plaintext {} B)",
        plaintext.len(),
        inner.len(),
        outer.len(),
        fwd_plain_len
    );

    // ---- the whole paths
    let send = time(budget, || {
        pack_for_service(&plaintext, &target, &alice).expect("pack")
    });
    let recv = time(budget, || unpack(inner.as_bytes(), &bob).expect("unpack"));
    let mediate = time(budget, || {
        let o = unpack(outer.as_bytes(), &mediator).expect("unpack");
        let f: Forward = o.json().expect("forward");
        serde_json::to_vec(&f.msg).expect("json")
    });

    // ---- bare primitives (askar-crypto, the same calls the path makes)
    let bob_x_pub = bob.public_key();
    let bob_x: X25519KeyPair = bob_pub_x(&bob_x_pub);
    let alice_secret_x = KeyPair::from_seed(&[1; 32]);
    let eph = X25519KeyPair::random().expect("key");
    let cek = [9u8; 32];
    let nonce = [5u8; 24];
    let boxed = {
        let mut b = cek.to_vec();
        crypto_box(&bob_x, &eph, &mut b, &nonce).expect("box");
        b
    };
    let bob_secret_x = bob_secret_x25519();
    let sealed_cek = crypto_box_seal(&bob_x, &cek).expect("seal");
    let sealed_vk = crypto_box_seal(&bob_x, alice.verkey().as_bytes()).expect("seal");
    let key = c20p_key();
    let kb = &plaintext[..];
    let big = vec![0u8; inner.len()];
    let enc_kb = aead_encrypt(&key, kb);
    let enc_big = aead_encrypt(&key, &big);
    let _ = alice_secret_x;

    let p_box = time(budget, || {
        let mut b = cek.to_vec();
        crypto_box(&bob_x, &eph, &mut b, &nonce).expect("box");
        b
    });
    let p_box_open = time(budget, || {
        let mut b = boxed.clone();
        crypto_box_open(&bob_secret_x, &eph, &mut b, &nonce).expect("open");
        b
    });
    let p_seal_cek = time(budget, || crypto_box_seal(&bob_x, &cek).expect("seal"));
    let p_seal_vk = time(budget, || {
        crypto_box_seal(&bob_x, alice.verkey().as_bytes()).expect("seal")
    });
    let p_seal_open_cek = time(budget, || {
        crypto_box_seal_open(&bob_secret_x, &sealed_cek).expect("open")
    });
    let p_seal_open_vk = time(budget, || {
        crypto_box_seal_open(&bob_secret_x, &sealed_vk).expect("open")
    });
    let alice_pub = *alice.public_bytes();
    let p_ed2x = time(budget, || PublicKey::from_bytes(&alice_pub).expect("key"));
    let p_enc_kb = time(budget, || aead_encrypt(&key, kb));
    let p_enc_big = time(budget, || aead_encrypt(&key, &big));
    let p_dec_kb = time(budget, || {
        let mut b = enc_kb.clone();
        key.decrypt_in_place(
            &mut b,
            &[1u8; 12],
            b"aad-of-protected-header-64-bytes-aad-of-protected-header-64-byte",
        )
        .expect("decrypt");
        b
    });
    let p_dec_big = time(budget, || {
        let mut b = enc_big.clone();
        key.decrypt_in_place(
            &mut b,
            &[1u8; 12],
            b"aad-of-protected-header-64-bytes-aad-of-protected-header-64-byte",
        )
        .expect("decrypt");
        b
    });

    let send_prims = p_box + p_seal_vk + p_enc_kb + p_seal_cek + p_enc_big;
    let recv_prims = p_seal_open_vk + p_ed2x + p_box_open + p_dec_kb;
    let mediate_prims = p_seal_open_cek + p_dec_big;

    println!();
    println!("{:<58} {:>9}", "primitive (askar-crypto 0.3.7)", "µs/op");
    for (name, v) in [
        ("crypto_box 32 B CEK (X25519 DH + XSalsa20-Poly1305)", p_box),
        ("crypto_box_open 48 B", p_box_open),
        ("crypto_box_seal 32 B CEK (keygen + DH)", p_seal_cek),
        ("crypto_box_seal 44 B sender verkey", p_seal_vk),
        ("crypto_box_seal_open 80 B", p_seal_open_cek),
        ("crypto_box_seal_open 92 B", p_seal_open_vk),
        ("Ed25519 -> X25519 public (validate + convert)", p_ed2x),
        (&format!("C20P encrypt {} B", kb.len()), p_enc_kb),
        (&format!("C20P encrypt {} B", big.len()), p_enc_big),
        (&format!("C20P decrypt {} B", kb.len()), p_dec_kb),
        (&format!("C20P decrypt {} B", big.len()), p_dec_big),
    ] {
        println!("{name:<58} {v:>9.1}");
    }
    println!();
    println!(
        "{:<44} {:>9} {:>13} {:>7}",
        "path (1 KB basicmessage, 1 routing key)", "µs/op", "primitives µs", "ratio"
    );
    let rows = [
        (
            "send: authcrypt + forward (pack_for_service)",
            send,
            send_prims,
        ),
        ("receive: unpack authcrypt", recv, recv_prims),
        (
            "mediator: unpack forward, re-serialize msg",
            mediate,
            mediate_prims,
        ),
        (
            "client total (send + receive)",
            send + recv,
            send_prims + recv_prims,
        ),
        (
            "whole path (send + mediator + receive)",
            send + mediate + recv,
            send_prims + mediate_prims + recv_prims,
        ),
    ];
    for (name, v, p) in rows {
        println!("{name:<44} {v:>9.1} {p:>13.1} {:>7.2}", v / p);
    }
    println!(
        "\n=> {:.0} mediated messages/s per core for the client side (send + receive)",
        1e6 / (send + recv)
    );
}

fn bob_pub_x(pk: &PublicKey) -> X25519KeyPair {
    use askar_crypto::repr::KeyPublicBytes;
    X25519KeyPair::from_public_bytes(&pk.x25519_bytes()).expect("x25519")
}

fn bob_secret_x25519() -> X25519KeyPair {
    use askar_crypto::alg::ed25519::Ed25519KeyPair;
    Ed25519KeyPair::from_secret_bytes(&[2; 32])
        .expect("seed")
        .to_x25519_keypair()
}
