//! did:key for Ed25519: `did:key:z` + base58(0xed 0x01 ‖ public key), and the reverse for the
//! key references invitations, grants and DID docs carry (`did:key:z6Mk…`, `…#z6Mk…`).

use super::error::DidcommError;

/// Multicodec prefix of an Ed25519 public key.
pub const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

const PREFIX: &str = "did:key:";

/// `z…` multibase of an Ed25519 key: what follows `did:key:` and what `publicKeyMultibase` holds.
pub fn multikey_ed25519(public: &[u8; 32]) -> String {
    multikey(&ED25519_MULTICODEC, public)
}

fn multikey(codec: &[u8; 2], public: &[u8; 32]) -> String {
    let mut raw = [0u8; 34];
    raw[..2].copy_from_slice(codec);
    raw[2..].copy_from_slice(public);
    let mut s = String::with_capacity(49);
    s.push('z');
    s.push_str(&bs58::encode(raw).into_string());
    s
}

/// `did:key:z6Mk…` of an Ed25519 public key.
pub fn from_public(public: &[u8; 32]) -> String {
    format!("{PREFIX}{}", multikey_ed25519(public))
}

/// `did:key:z6Mk…#z6Mk…`, the DID URL form used in `recipientKeys` and `routingKeys`.
pub fn url_from_public(public: &[u8; 32]) -> String {
    let mk = multikey_ed25519(public);
    format!("{PREFIX}{mk}#{mk}")
}

/// Raw Ed25519 key from a `z6Mk…` multibase value (`publicKeyMultibase` of a Multikey).
pub fn parse_multikey_ed25519(mk: &str) -> Result<[u8; 32], DidcommError> {
    let b58 = mk.strip_prefix('z').ok_or_else(|| {
        DidcommError::InvalidKey(format!("multibase {mk:?} is not base58btc ('z')"))
    })?;
    let raw = bs58::decode(b58)
        .into_vec()
        .map_err(|source| DidcommError::Base58 {
            field: "multikey",
            source,
        })?;
    match raw.split_first_chunk::<2>() {
        Some((codec, key)) if *codec == ED25519_MULTICODEC && key.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err(DidcommError::InvalidKey(format!(
            "multikey {mk:?} is not an Ed25519 key"
        ))),
    }
}

/// Raw Ed25519 key from `did:key:z6Mk…`, with or without a `#fragment`.
pub fn parse(did: &str) -> Result<[u8; 32], DidcommError> {
    let rest = did
        .strip_prefix(PREFIX)
        .ok_or_else(|| DidcommError::did(did, "not a did:key"))?;
    let mk = rest.split('#').next().unwrap_or(rest);
    parse_multikey_ed25519(mk).map_err(|e| DidcommError::did(did, e.to_string()))
}

/// Base58 verkey of a key reference: a `did:key` (URL) is converted, anything else is taken
/// to be a base58 verkey already and checked to decode to 32 bytes.
pub fn to_verkey(key_ref: &str) -> Result<String, DidcommError> {
    if key_ref.starts_with(PREFIX) {
        return Ok(bs58::encode(parse(key_ref)?).into_string());
    }
    let raw = bs58::decode(key_ref)
        .into_vec()
        .map_err(|source| DidcommError::Base58 {
            field: "verkey",
            source,
        })?;
    if raw.len() != 32 {
        return Err(DidcommError::InvalidKey(format!(
            "verkey {key_ref:?} decodes to {} bytes, not 32",
            raw.len()
        )));
    }
    Ok(key_ref.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    // From the walkthrough: routing key z6MkuWiM… is base58 G4TK1fU4…
    const DK: &str = "did:key:z6MkuWiMbuiVaEwwpiGr5CV8Zzn3YZCRf6n9ZJEqucqTXze6";

    #[test]
    fn did_key_round_trip() {
        let raw = parse(DK).unwrap();
        assert_eq!(from_public(&raw), DK);
        assert_eq!(
            url_from_public(&raw),
            format!("{DK}#{}", &DK["did:key:".len()..])
        );
        assert_eq!(parse(&url_from_public(&raw)).unwrap(), raw);
        assert!(to_verkey(DK).unwrap().starts_with("G4TK1fU4"));
        let vk = to_verkey(DK).unwrap();
        assert_eq!(to_verkey(&vk).unwrap(), vk);
    }

    #[test]
    fn malformed_did_keys_are_errors() {
        for bad in [
            "did:key:",
            "did:key:x6Mk",
            "did:key:z",
            "did:key:z0OIl",
            "did:web:example.com",
            "did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc", // X25519
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(to_verkey("abc").is_err());
    }
}
