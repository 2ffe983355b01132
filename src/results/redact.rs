//! Keeping secrets out of output: JSON keys that hold secrets in ACA-Py traffic, and
//! known secret values (API keys, captured tokens) scrubbed from any text we print.

/// Parts of key names whose values are secrets in ACA-Py requests and responses, in any
/// form (`wallet_key`, `X-API-Key`, `walletKey`, `access_token`, `jwt_secret`, `passwd`…).
const SECRET_PARTS: &[&str] = &["key", "token", "secret", "password", "passwd", "jwt"];

/// Whole key names that are secrets.
const SECRET_KEYS: &[&str] = &["seed", "authorization", "cookie"];

/// True for a JSON key or header name that carries a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|p| k.contains(p)) || SECRET_KEYS.contains(&k.as_str())
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

/// Scrubs every string (and key) of a JSON document, leaving its structure alone: a secret
/// can neither leak through JSON escaping nor break the document. Serialized histograms
/// (keys ending in `histogram`) are numbers in base64, never scrubbed.
pub fn scrub_json(v: &mut serde_json::Value, secrets: &[String]) {
    match v {
        serde_json::Value::String(s) => {
            let clean = scrub(s, secrets);
            if clean != *s {
                *s = clean;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| scrub_json(i, secrets)),
        serde_json::Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut val) in old {
                if !k.ends_with("histogram") {
                    scrub_json(&mut val, secrets);
                }
                map.insert(scrub(&k, secrets), val);
            }
        }
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
    fn key_names_in_common_forms_are_masked() {
        let mut v = serde_json::json!({
            "walletKey": "a", "X-API-Key": "b", "access_token": "c", "client_secret": "d",
            "Password": "e", "nested": [{"refreshToken": "f", "label": "kept"}]
        });
        mask_secret_keys(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "walletKey": "***", "X-API-Key": "***", "access_token": "***",
                "client_secret": "***", "Password": "***",
                "nested": [{"refreshToken": "***", "label": "kept"}]
            })
        );
    }

    #[test]
    fn json_is_scrubbed_leaf_by_leaf() {
        let secrets = vec!["quo\"te-secret".to_string()];
        let mut v = serde_json::json!({"a": "x quo\"te-secret y", "histogram": "eyJxx"});
        scrub_json(&mut v, &secrets);
        assert_eq!(v, serde_json::json!({"a": "x *** y", "histogram": "eyJxx"}));
    }

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
