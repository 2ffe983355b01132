//! Ed25519 identities and the X25519 keys DIDComm v1 boxes with, converted once and cached.
//!
//! Every pack or unpack needs the X25519 form of both parties' keys; converting a public key is
//! a point decompression (~10 µs), so a key is converted when it is built and never again.

use askar_crypto::alg::ed25519::Ed25519KeyPair;
use askar_crypto::alg::x25519::X25519KeyPair;
use askar_crypto::repr::{KeyGen, KeyPublicBytes, KeySecretBytes, ToPublicBytes};

use super::did_key;
use super::error::DidcommError;

/// Length of an Ed25519 public key, secret seed, or X25519 key.
pub const KEY_LENGTH: usize = 32;

/// Our own Ed25519 key pair (a "verkey" and its secret) with its X25519 form.
#[derive(Clone)]
pub struct KeyPair {
    ed: Ed25519KeyPair,
    x: X25519KeyPair,
    public: [u8; KEY_LENGTH],
    verkey: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the secret
        f.debug_struct("KeyPair")
            .field("verkey", &self.verkey)
            .finish()
    }
}

impl KeyPair {
    /// A fresh random key pair from the OS random source.
    pub fn generate() -> Result<Self, DidcommError> {
        let ed = Ed25519KeyPair::random()
            .map_err(|e| DidcommError::InvalidKey(format!("key generation failed: {e}")))?;
        Ok(Self::from_ed(ed))
    }

    /// The key pair whose Ed25519 secret is `seed` (what askar's `Key.from_secret_bytes` does);
    /// deterministic, for tests and fixtures.
    pub fn from_seed(seed: &[u8; KEY_LENGTH]) -> Self {
        match Ed25519KeyPair::from_secret_bytes(seed) {
            Ok(ed) => Self::from_ed(ed),
            // from_secret_bytes only fails on a wrong length, which the array type rules out
            Err(_) => unreachable!("a 32-byte Ed25519 seed is always accepted"),
        }
    }

    fn from_ed(ed: Ed25519KeyPair) -> Self {
        let x = ed.to_x25519_keypair();
        let mut public = [0u8; KEY_LENGTH];
        if let Ok(bytes) = ed.to_public_bytes() {
            public.copy_from_slice(&bytes);
        }
        let verkey = bs58::encode(public).into_string();
        Self {
            ed,
            x,
            public,
            verkey,
        }
    }

    /// The raw Ed25519 public key.
    pub fn public_bytes(&self) -> &[u8; KEY_LENGTH] {
        &self.public
    }

    /// The base58 verkey (the form ACA-Py uses for `kid`, `to` and routing records).
    pub fn verkey(&self) -> &str {
        &self.verkey
    }

    /// The `did:key:z6Mk…` of this key.
    pub fn did_key(&self) -> String {
        did_key::from_public(&self.public)
    }

    /// The public half, as a peer would hold it.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            x: public_x(&self.x),
            public: self.public,
            verkey: self.verkey.clone(),
        }
    }

    /// EdDSA signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], DidcommError> {
        self.ed
            .sign(message)
            .ok_or_else(|| DidcommError::InvalidKey("key pair has no secret".into()))
    }

    /// The X25519 key pair (secret included) used for crypto_box.
    pub(crate) fn x25519(&self) -> &X25519KeyPair {
        &self.x
    }
}

/// A peer's Ed25519 public key with its X25519 form.
#[derive(Clone)]
pub struct PublicKey {
    x: X25519KeyPair,
    public: [u8; KEY_LENGTH],
    verkey: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PublicKey").field(&self.verkey).finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.public == other.public
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// From raw Ed25519 bytes; rejects wrong lengths and points that are not on the curve.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DidcommError> {
        let ed = Ed25519KeyPair::from_public_bytes(bytes).map_err(|_| {
            DidcommError::InvalidKey(format!("not an Ed25519 public key ({} bytes)", bytes.len()))
        })?;
        let mut public = [0u8; KEY_LENGTH];
        public.copy_from_slice(bytes);
        // validated above, so the conversion's internal decompression cannot fail
        let x = ed.to_x25519_keypair();
        Ok(Self {
            x,
            public,
            verkey: bs58::encode(public).into_string(),
        })
    }

    /// From a base58 verkey.
    pub fn from_verkey(verkey: &str) -> Result<Self, DidcommError> {
        let bytes = bs58::decode(verkey)
            .into_vec()
            .map_err(|source| DidcommError::Base58 {
                field: "verkey",
                source,
            })?;
        Self::from_bytes(&bytes)
    }

    /// From any key reference found in invitations and DID docs: a raw base58 verkey, a
    /// `did:key:z6Mk…`, or a `did:key:z6Mk…#z6Mk…` URL.
    pub fn from_key_ref(key_ref: &str) -> Result<Self, DidcommError> {
        if key_ref.starts_with("did:key:") {
            Self::from_bytes(&did_key::parse(key_ref)?)
        } else {
            Self::from_verkey(key_ref)
        }
    }

    /// The raw Ed25519 public key.
    pub fn public_bytes(&self) -> &[u8; KEY_LENGTH] {
        &self.public
    }

    /// The base58 verkey.
    pub fn verkey(&self) -> &str {
        &self.verkey
    }

    /// The `did:key:z6Mk…` of this key.
    pub fn did_key(&self) -> String {
        did_key::from_public(&self.public)
    }

    /// The raw X25519 public key (what a did doc's X25519KeyAgreementKey2019 carries).
    pub fn x25519_bytes(&self) -> [u8; KEY_LENGTH] {
        let mut out = [0u8; KEY_LENGTH];
        if let Ok(b) = self.x.to_public_bytes() {
            out.copy_from_slice(&b);
        }
        out
    }

    /// Verifies an EdDSA signature (strict verification, as ACA-Py's askar does).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match Ed25519KeyPair::from_public_bytes(&self.public) {
            Ok(ed) => ed.verify_signature(message, signature),
            Err(_) => false,
        }
    }

    /// The X25519 public key used for crypto_box.
    pub(crate) fn x25519(&self) -> &X25519KeyPair {
        &self.x
    }
}

/// The public-only X25519 key of a key pair (so a `PublicKey` never carries our secret).
fn public_x(x: &X25519KeyPair) -> X25519KeyPair {
    match x.to_public_bytes() {
        Ok(b) => match X25519KeyPair::from_public_bytes(&b) {
            Ok(k) => k,
            Err(_) => unreachable!("32 bytes are always an X25519 public key"),
        },
        Err(_) => unreachable!("an X25519 key always has public bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_gives_known_verkey() {
        // askar: Key.from_secret_bytes(ED25519, b"testseed000000000000000000000001")
        let kp = KeyPair::from_seed(b"testseed000000000000000000000001");
        let pk = PublicKey::from_verkey(kp.verkey()).unwrap();
        assert_eq!(pk, kp.public_key());
        assert_eq!(pk.x25519_bytes(), kp.public_key().x25519_bytes());
    }

    #[test]
    fn sign_verify() {
        let kp = KeyPair::generate().unwrap();
        let sig = kp.sign(b"hello").unwrap();
        assert!(kp.public_key().verify(b"hello", &sig));
        assert!(!kp.public_key().verify(b"hellO", &sig));
        assert!(!kp.public_key().verify(b"hello", &sig[..10]));
    }

    #[test]
    fn bad_public_keys_are_errors_not_panics() {
        assert!(PublicKey::from_bytes(&[1, 2, 3]).is_err());
        assert!(PublicKey::from_verkey("0OIl").is_err());
        assert!(PublicKey::from_verkey("").is_err());
        // a y-coordinate with no point on the curve
        let mut not_a_point = [0xffu8; 32];
        not_a_point[31] = 0x7f;
        let _ = PublicKey::from_bytes(&not_a_point); // must not panic either way
        assert!(PublicKey::from_key_ref("did:key:zzzz").is_err());
    }
}
