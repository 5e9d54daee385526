//! Parsing Signature-Input / Signature (RFC 9421 §4) with sfv.
use super::{SigError, MAX_SIGNATURE_HEADER_LEN, NONCE_MAX_LEN, NONCE_MIN_LEN};

/// A covered component: its name and the serialized identifier used in the signature base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    /// e.g. `"@method"` or `"signature";req;key="sig"`.
    pub identifier: String,
}

/// The one signature of a request the gateway verifies.
#[derive(Debug, Clone)]
pub struct SignatureInput {
    pub label: String,
    pub components: Vec<Component>,
    /// The serialized inner list with its parameters: the `@signature-params` value.
    pub params_serialized: String,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub keyid: Option<String>,
    pub nonce: Option<String>,
    pub alg: Option<String>,
    pub signature: Vec<u8>,
    /// This signature's member value in the Signature field, serialized (`:base64:`), which a
    /// response binds to with `"signature";req;key="<label>"`.
    pub signature_value_serialized: String,
}

impl SignatureInput {
    pub fn covers(&self, name: &str) -> bool {
        self.components.iter().any(|c| c.name == name)
    }
}

fn invalid(msg: impl Into<String>) -> SigError {
    SigError::Invalid(msg.into())
}

/// Parses the two headers and picks the signature labelled `sig`, else the first one.
/// `None` headers mean absent. Checks the profile's required parameters are present and well
/// formed; which components must be covered is the caller's business.
pub fn parse_request_signature(
    signature_input: Option<&str>,
    signature: Option<&str>,
) -> Result<SignatureInput, SigError> {
    let (Some(input), Some(sig)) = (signature_input, signature) else {
        return Err(SigError::Missing);
    };
    if input.len() > MAX_SIGNATURE_HEADER_LEN || sig.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(invalid("signature headers are too long"));
    }
    let inputs: sfv::Dictionary = sfv::Parser::new(input)
        .parse()
        .map_err(|_| invalid("Signature-Input is not a structured dictionary"))?;
    let sigs: sfv::Dictionary = sfv::Parser::new(sig)
        .parse()
        .map_err(|_| invalid("Signature is not a structured dictionary"))?;
    let (label, entry) = match inputs.get_key_value("sig") {
        Some((k, v)) => (k.as_str().to_owned(), v),
        None => match inputs.first() {
            Some((k, v)) => (k.as_str().to_owned(), v),
            None => return Err(SigError::Missing),
        },
    };
    let sfv::ListEntry::InnerList(list) = entry else {
        return Err(invalid(format!(
            "Signature-Input member {label:?} is not an inner list"
        )));
    };

    let mut components = Vec::with_capacity(list.items.len());
    for item in &list.items {
        let Some(name) = item.bare_item.as_string() else {
            return Err(invalid("component identifiers must be strings"));
        };
        if !item.params.is_empty() {
            return Err(invalid(format!(
                "component {:?} has parameters, which this profile does not support",
                name.as_str()
            )));
        }
        let name = name.as_str();
        if name != name.to_ascii_lowercase() {
            return Err(invalid(format!("component {name:?} must be lowercase")));
        }
        if components.iter().any(|c: &Component| c.name == name) {
            return Err(invalid(format!("component {name:?} is covered twice")));
        }
        components.push(Component {
            name: name.to_owned(),
            identifier: serialize_item(item),
        });
    }

    let mut out = SignatureInput {
        label: label.clone(),
        components,
        params_serialized: serialize_inner_list(list),
        created: None,
        expires: None,
        keyid: None,
        nonce: None,
        alg: None,
        signature: Vec::new(),
        signature_value_serialized: String::new(),
    };
    for (key, value) in &list.params {
        match key.as_str() {
            "created" => out.created = Some(int_param(value, "created")?),
            "expires" => out.expires = Some(int_param(value, "expires")?),
            "keyid" => out.keyid = Some(str_param(value, "keyid")?),
            "nonce" => out.nonce = Some(str_param(value, "nonce")?),
            "alg" => out.alg = Some(str_param(value, "alg")?),
            "tag" => {
                str_param(value, "tag")?;
            }
            other => return Err(invalid(format!("unknown signature parameter {other:?}"))),
        }
    }
    if out.created.is_none() {
        return Err(invalid("the signature has no created parameter"));
    }
    match &out.keyid {
        Some(k) if !k.is_empty() && k.len() <= 128 => {}
        Some(_) => return Err(invalid("keyid must be 1 to 128 characters")),
        None => return Err(invalid("the signature has no keyid parameter")),
    }
    match &out.nonce {
        Some(n)
            if (NONCE_MIN_LEN..=NONCE_MAX_LEN).contains(&n.len())
                && n.bytes().all(|b| b.is_ascii_graphic()) => {}
        Some(_) => return Err(invalid("nonce must be 16 to 128 visible ASCII characters")),
        None => return Err(invalid("the signature has no nonce parameter")),
    }

    let Some(sfv::ListEntry::Item(sig_item)) = sigs.get(label.as_str()) else {
        return Err(invalid(format!("Signature has no member {label:?}")));
    };
    let Some(bytes) = sig_item.bare_item.as_byte_sequence() else {
        return Err(invalid("the signature value is not a byte sequence"));
    };
    out.signature = bytes.to_vec();
    out.signature_value_serialized = serialize_item(sig_item);
    Ok(out)
}

fn int_param(v: &sfv::BareItem, name: &str) -> Result<i64, SigError> {
    v.as_integer()
        .map(i64::from)
        .ok_or_else(|| invalid(format!("{name} must be an integer")))
}

fn str_param(v: &sfv::BareItem, name: &str) -> Result<String, SigError> {
    v.as_string()
        .map(|s| s.as_str().to_owned())
        .ok_or_else(|| invalid(format!("{name} must be a string")))
}

/// Serializes one item with its parameters, e.g. `"@method"` or `:AAEC:`.
pub fn serialize_item(item: &sfv::Item) -> String {
    sfv::ItemSerializer::new()
        .bare_item(&item.bare_item)
        .parameters(&item.params)
        .finish()
}

/// Serializes an inner list with its parameters: `("a" "b");created=1`.
pub fn serialize_inner_list(list: &sfv::InnerList) -> String {
    let mut ser = sfv::ListSerializer::new();
    let entry = sfv::ListEntry::InnerList(list.clone());
    ser.members(std::iter::once(&entry));
    ser.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = r#"sig=("@method" "@path" "@query");created=1764000000;keyid="P-RST-001/k1";nonce="0123456789abcdef";alg="ed25519""#;

    #[test]
    fn picks_the_sig_label_and_reads_parameters() {
        let other = r#"first=("@method");created=1;keyid="x";nonce="0123456789abcdef", "#;
        let s = parse_request_signature(
            Some(&format!("{other}{INPUT}")),
            Some("first=:AAAA:, sig=:AQID:"),
        )
        .unwrap();
        assert_eq!(s.label, "sig");
        assert_eq!(s.keyid.as_deref(), Some("P-RST-001/k1"));
        assert_eq!(s.created, Some(1764000000));
        assert_eq!(s.signature, vec![1, 2, 3]);
        assert_eq!(s.signature_value_serialized, ":AQID:");
        assert_eq!(
            s.params_serialized,
            r#"("@method" "@path" "@query");created=1764000000;keyid="P-RST-001/k1";nonce="0123456789abcdef";alg="ed25519""#
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        assert_eq!(
            parse_request_signature(None, Some("sig=:AA==:")).unwrap_err(),
            SigError::Missing
        );
        assert!(matches!(
            parse_request_signature(Some("sig=(((("), Some("sig=:AA==:")),
            Err(SigError::Invalid(_))
        ));
        let no_nonce = r#"sig=("@method");created=1;keyid="k""#;
        assert!(matches!(
            parse_request_signature(Some(no_nonce), Some("sig=:AA==:")),
            Err(SigError::Invalid(m)) if m.contains("nonce")
        ));
        let short_nonce = r#"sig=("@method");created=1;keyid="k";nonce="abc""#;
        assert!(parse_request_signature(Some(short_nonce), Some("sig=:AA==:")).is_err());
    }
}
