//! Keeping secrets out of output: JSON keys that hold secrets in ACA-Py traffic, and
//! known secret values (API keys, captured tokens) scrubbed from any text we print.

/// Keys whose values are secrets in ACA-Py requests and responses.
const SECRET_KEYS: &[&str] = &[
    "wallet_key",
    "token",
    "jwt",
    "seed",
    "password",
    "api_key",
    "x-api-key",
    "jwt_secret",
];

/// True for a JSON key or header name that carries a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&k.as_str()) || k == "authorization"
}

/// Replaces the values of secret keys, at any depth, with `***`.
pub fn mask_secret_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_secret_key(k) {
                    *val = serde_json::Value::String("***".into());
                } else {
                    mask_secret_keys(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_secret_keys),
        _ => {}
    }
}

/// Removes known secret values (and JWT-looking tokens) from text meant for people.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    // JWTs (tenant tokens) start with a base64url `{"` header: eyJ…
    while let Some(i) = out.find("eyJ") {
        let end = out[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .map_or(out.len(), |e| i + e);
        out.replace_range(i..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keys_and_values() {
        let mut v =
            serde_json::json!({"wallet_key": "k", "settings": {"token": "t", "label": "A"}});
        mask_secret_keys(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"wallet_key": "***", "settings": {"token": "***", "label": "A"}})
        );
        let text = r#"{"token":"eyJhbGciOiJIUzI1NiJ9.eyJ3YWxsZXQ.sig","key":"hunter22"}"#;
        assert_eq!(
            scrub(text, &["hunter22".into()]),
            r#"{"token":"***","key":"***"}"#
        );
    }
}
