//! The signature base (RFC 9421 §2.5).
use super::input::Component;
use super::SigError;

/// What a signature can cover of an HTTP message, as received.
#[derive(Debug, Clone, Default)]
pub struct Message<'a> {
    pub method: Option<&'a str>,
    /// The raw path as sent, percent-encoding untouched.
    pub path: Option<&'a str>,
    /// The raw query without `?`; `None` when the request had no query string.
    pub query: Option<&'a str>,
    pub authority: Option<&'a str>,
    pub scheme: Option<&'a str>,
    pub status: Option<u16>,
    /// Header fields as (lowercase name, value); repeated names are combined.
    pub headers: Vec<(&'a str, &'a str)>,
}

impl Message<'_> {
    /// The value of a derived or header component, or why it cannot be had.
    pub fn component_value(&self, name: &str) -> Result<String, SigError> {
        let missing =
            || SigError::Invalid(format!("covered component {name:?} is not in the message"));
        match name {
            "@method" => self.method.map(str::to_owned).ok_or_else(missing),
            "@path" => self
                .path
                .map(|p| {
                    if p.is_empty() {
                        "/".to_owned()
                    } else {
                        p.to_owned()
                    }
                })
                .ok_or_else(missing),
            "@query" => {
                if self.method.is_none() {
                    return Err(missing());
                }
                Ok(format!("?{}", self.query.unwrap_or("")))
            }
            "@authority" => self
                .authority
                .map(|a| a.to_ascii_lowercase())
                .ok_or_else(missing),
            "@scheme" => self.scheme.map(str::to_ascii_lowercase).ok_or_else(missing),
            "@request-target" => {
                let path = self.path.ok_or_else(missing)?;
                Ok(match self.query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.to_owned(),
                })
            }
            "@target-uri" => {
                let scheme = self.scheme.ok_or_else(missing)?;
                let authority = self.authority.ok_or_else(missing)?;
                let path = self.path.ok_or_else(missing)?;
                Ok(match self.query {
                    Some(q) => format!("{scheme}://{authority}{path}?{q}"),
                    None => format!("{scheme}://{authority}{path}"),
                })
            }
            "@status" => self.status.map(|s| s.to_string()).ok_or_else(missing),
            derived if derived.starts_with('@') => Err(SigError::Invalid(format!(
                "derived component {derived:?} is not supported"
            ))),
            field => {
                let values: Vec<&str> = self
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(field))
                    .map(|(_, v)| v.trim())
                    .collect();
                if values.is_empty() {
                    Err(missing())
                } else {
                    Ok(values.join(", "))
                }
            }
        }
    }
}

/// Builds the signature base for `components` of `msg`; `extra` supplies lines whose values
/// come from elsewhere (a response's `"signature";req` binding).
pub fn signature_base(
    msg: &Message<'_>,
    components: &[Component],
    extra: &[(&Component, &str)],
    params_serialized: &str,
) -> Result<String, SigError> {
    let mut base = String::with_capacity(256);
    for c in components {
        let value = match extra.iter().find(|(e, _)| e.identifier == c.identifier) {
            Some((_, v)) => (*v).to_owned(),
            None => msg.component_value(&c.name)?,
        };
        if value.contains('\n') || value.contains('\r') {
            return Err(SigError::Invalid(
                "component values may not contain newlines".into(),
            ));
        }
        base.push_str(&c.identifier);
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(params_serialized);
    Ok(base)
}
