//! JSON of the wrong shape, described without repeating any value from it.
//!
//! Why: serde's messages quote the offending value ("invalid type: integer `8800123456`,
//! expected a string"), and that value can be a card number or a phone number sent as a
//! number. The contract never lets member data leave the gateway, in a problem or anywhere
//! else, so these messages keep only what was expected, and name the field by its path.

/// A value of type `T` from a JSON value, or the failing field's path and a message.
pub fn from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        describe(&path, &e.into_inner().to_string())
    })
}

/// The field's path and a message without any value from the body. `path` is
/// serde_path_to_error's (`.` for the top level, or empty when unknown).
pub fn describe(path: &str, raw: &str) -> (String, String) {
    // serde_json adds " at line L column C".
    let msg = raw.rsplit_once(" at line ").map_or(raw, |(m, _)| m);
    let parent = if path == "." { "" } else { path };
    let join = |name: &str| {
        if parent.is_empty() || parent.ends_with(name) {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    };
    // Field names come from our own types (missing) or are keys, not values (unknown).
    for prefix in ["missing field", "unknown field", "duplicate field"] {
        if msg.starts_with(prefix) {
            let name = msg.split('`').nth(1).unwrap_or_default();
            let field = if name.is_empty() {
                parent.to_owned()
            } else {
                join(name)
            };
            return (field, format!("{prefix} `{name}`"));
        }
    }
    // What was expected is from our own types; what was found is the body's and stays out.
    let expected = msg.split_once(", expected ").map(|(_, x)| x);
    let message = match (msg.split(':').next().unwrap_or_default(), expected) {
        ("invalid type", Some(x)) => format!("wrong type: expected {x}"),
        ("invalid value", Some(x)) => format!("invalid value: expected {x}"),
        (m, Some(x)) if m.starts_with("invalid length") => format!("wrong length: expected {x}"),
        (m, Some(x)) if m.starts_with("unknown variant") => {
            format!("unknown value: expected {x}")
        }
        _ => "invalid value".to_owned(),
    };
    (parent.to_owned(), message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Sale {
        card_no: String,
        gross_fen: i64,
    }

    #[test]
    fn values_never_appear_in_the_description() {
        let (field, message) =
            from_value::<Sale>(json!({"card_no": 13800138000_i64, "gross_fen": 1})).unwrap_err();
        assert_eq!(field, "card_no");
        assert_eq!(message, "wrong type: expected a string");
        let (field, message) =
            from_value::<Sale>(json!({"card_no": "x", "gross_fen": "8800123456"})).unwrap_err();
        assert_eq!(field, "gross_fen");
        assert!(!message.contains("8800123456"), "{message}");
        let (field, message) = from_value::<Sale>(json!({"card_no": "x"})).unwrap_err();
        assert_eq!(
            (field.as_str(), message.as_str()),
            ("gross_fen", "missing field `gross_fen`")
        );
    }
}
