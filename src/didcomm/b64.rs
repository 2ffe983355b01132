//! Base64 flavours used on the wire: url-safe without padding on output, and lenient input
//! (padded or not, and for attachments and invitations standard or url-safe alphabets).

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::error::DidcommError;

/// Url-safe; writes no padding, accepts input with or without it (ACA-Py pads some fields).
const URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard alphabet with padding on output (ACA-Py's attachment `base64`), lenient input.
const STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64url without padding.
pub(crate) fn url_encode(data: &[u8]) -> String {
    URL.encode(data)
}

/// Appends base64url without padding to `out` (saves an allocation on the hot path).
pub(crate) fn url_encode_into(data: &[u8], out: &mut String) {
    URL.encode_string(data, out);
}

/// Decodes base64url, padded or not.
pub(crate) fn url_decode(field: &'static str, s: &str) -> Result<Vec<u8>, DidcommError> {
    URL.decode(s)
        .map_err(|source| DidcommError::Base64 { field, source })
}

/// Decodes base64url (padded or not), appending to `out`.
pub(crate) fn url_decode_into(
    field: &'static str,
    s: &str,
    out: &mut Vec<u8>,
) -> Result<(), DidcommError> {
    URL.decode_vec(s, out)
        .map_err(|source| DidcommError::Base64 { field, source })
}

/// Standard base64 with padding.
pub(crate) fn std_encode(data: &[u8]) -> String {
    STD.encode(data)
}

/// Decodes either alphabet, padded or not: invitations and attachments come in every flavour.
pub(crate) fn any_decode(field: &'static str, s: &str) -> Result<Vec<u8>, DidcommError> {
    let s = s.trim();
    if s.contains(['-', '_']) {
        url_decode(field, s)
    } else {
        STD.decode(s)
            .map_err(|source| DidcommError::Base64 { field, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_round_trip_and_padding_tolerance() {
        assert_eq!(url_encode(b"ab"), "YWI");
        assert_eq!(url_decode("t", "YWI").unwrap(), b"ab");
        assert_eq!(url_decode("t", "YWI=").unwrap(), b"ab");
        assert!(url_decode("t", "Y!").is_err());
    }

    #[test]
    fn any_decode_accepts_both_alphabets() {
        // 0xfb 0xff encodes to "-_8" (url) or "+/8=" (std)
        assert_eq!(any_decode("t", "-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(any_decode("t", "+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(any_decode("t", "+/8").unwrap(), [0xfb, 0xff]);
        assert_eq!(std_encode(&[0xfb, 0xff]), "+/8=");
    }
}
