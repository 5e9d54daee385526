//! Producing signatures: the gateway's responses, and requests (for tests, benchmarks and the
//! reference client docs).
use super::base::{signature_base, Message};
use super::input::Component;
use super::SigError;
use crate::pki::keys::PrivateKey;
use base64::Engine;
use sfv::{KeyRef, StringRef};

/// The two header values of one signature.
#[derive(Debug, Clone)]
pub struct SignatureHeaders {
    /// `Signature-Input` value, e.g. `sig=(...);created=...`.
    pub signature_input: String,
    /// `Signature` value, e.g. `sig=:...:`.
    pub signature: String,
    pub base: String,
}

/// A parameter of the signature (`created`, `keyid`, ...).
pub enum Param<'a> {
    Int(&'a str, i64),
    Str(&'a str, &'a str),
}

/// A covered component; `req_key` makes it `"<name>";req;key="<label>"` (a response binding
/// to a request signature).
pub struct Covered<'a> {
    pub name: &'a str,
    pub req_key: Option<&'a str>,
}

fn sfv_err(e: sfv::Error) -> SigError {
    SigError::Invalid(format!("cannot serialize signature parameters: {e}"))
}

/// Serializes the covered components and parameters: (components, `@signature-params` value).
fn serialize_input(
    covered: &[Covered<'_>],
    params: &[Param<'_>],
) -> Result<(Vec<Component>, String), SigError> {
    let mut components = Vec::with_capacity(covered.len());
    for c in covered {
        let mut id = String::new();
        let ser = sfv::ItemSerializer::with_buffer(&mut id)
            .bare_item(StringRef::from_str(c.name).map_err(sfv_err)?);
        if let Some(key) = c.req_key {
            ser.parameter(KeyRef::from_str("req").map_err(sfv_err)?, true)
                .parameter(
                    KeyRef::from_str("key").map_err(sfv_err)?,
                    StringRef::from_str(key).map_err(sfv_err)?,
                );
        }
        components.push(Component {
            name: c.name.to_owned(),
            identifier: id,
        });
    }
    let mut out = String::new();
    {
        let mut list = sfv::ListSerializer::with_buffer(&mut out);
        let mut inner = list.inner_list();
        for c in covered {
            let item = inner.bare_item(StringRef::from_str(c.name).map_err(sfv_err)?);
            if let Some(key) = c.req_key {
                item.parameter(KeyRef::from_str("req").map_err(sfv_err)?, true)
                    .parameter(
                        KeyRef::from_str("key").map_err(sfv_err)?,
                        StringRef::from_str(key).map_err(sfv_err)?,
                    );
            }
        }
        let mut p = inner.finish();
        for param in params {
            p = match param {
                Param::Int(k, v) => p.parameter(
                    KeyRef::from_str(k).map_err(sfv_err)?,
                    sfv::Integer::try_from(*v).map_err(sfv_err)?,
                ),
                Param::Str(k, v) => p.parameter(
                    KeyRef::from_str(k).map_err(sfv_err)?,
                    StringRef::from_str(v).map_err(sfv_err)?,
                ),
            };
        }
        let _ = list.finish();
    }
    Ok((components, out))
}

/// Signs `msg` over `covered` with `params`; `bound_values` gives the values of `req_key`
/// components (the serialized request signature).
pub fn sign(
    key: &PrivateKey,
    label: &str,
    msg: &Message<'_>,
    covered: &[Covered<'_>],
    params: &[Param<'_>],
    bound_value: Option<&str>,
) -> Result<SignatureHeaders, SigError> {
    let (components, params_serialized) = serialize_input(covered, params)?;
    let extra: Vec<(&Component, &str)> = match bound_value {
        Some(v) => components
            .iter()
            .zip(covered)
            .filter(|(_, c)| c.req_key.is_some())
            .map(|(comp, _)| (comp, v))
            .collect(),
        None => Vec::new(),
    };
    let base = signature_base(msg, &components, &extra, &params_serialized)?;
    let sig = key
        .sign(base.as_bytes())
        .map_err(|e| SigError::Invalid(e.to_string()))?;
    Ok(SignatureHeaders {
        signature_input: format!("{label}={params_serialized}"),
        signature: format!(
            "{label}=:{}:",
            base64::engine::general_purpose::STANDARD.encode(sig)
        ),
        base,
    })
}

/// The gateway's response signature (contract section 3). `request` is the verified request
/// signature's label and serialized value, when there is one to bind to.
pub fn sign_response(
    key: &PrivateKey,
    key_id: &str,
    created: i64,
    status: u16,
    content_type: &str,
    content_digest: &str,
    request: Option<(&str, &str)>,
) -> Result<SignatureHeaders, SigError> {
    let headers = vec![
        ("content-type", content_type),
        ("content-digest", content_digest),
    ];
    let msg = Message {
        status: Some(status),
        headers,
        ..Message::default()
    };
    let mut covered = vec![
        Covered {
            name: "@status",
            req_key: None,
        },
        Covered {
            name: "content-type",
            req_key: None,
        },
        Covered {
            name: "content-digest",
            req_key: None,
        },
    ];
    if let Some((label, _)) = request {
        covered.push(Covered {
            name: "signature",
            req_key: Some(label),
        });
    }
    let params = [
        Param::Int("created", created),
        Param::Str("keyid", key_id),
        Param::Str("alg", key.alg().as_str()),
    ];
    sign(key, "sig", &msg, &covered, &params, request.map(|(_, v)| v))
}

/// What a partner signs for one request under `alliance-sig-v1`.
pub struct RequestToSign<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_digest: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub key_id: &'a str,
    pub created: i64,
    pub nonce: &'a str,
}

/// Signs a request the way the contract asks a partner to.
pub fn sign_request(key: &PrivateKey, r: &RequestToSign<'_>) -> Result<SignatureHeaders, SigError> {
    let mut headers = Vec::new();
    let mut covered = vec![
        Covered {
            name: "@method",
            req_key: None,
        },
        Covered {
            name: "@path",
            req_key: None,
        },
        Covered {
            name: "@query",
            req_key: None,
        },
    ];
    if let (Some(ct), Some(cd)) = (r.content_type, r.content_digest) {
        headers.push(("content-type", ct));
        headers.push(("content-digest", cd));
        covered.push(Covered {
            name: "content-type",
            req_key: None,
        });
        covered.push(Covered {
            name: "content-digest",
            req_key: None,
        });
    }
    if let Some(k) = r.idempotency_key {
        headers.push(("idempotency-key", k));
        covered.push(Covered {
            name: "idempotency-key",
            req_key: None,
        });
    }
    let msg = Message {
        method: Some(r.method),
        path: Some(r.path),
        query: r.query,
        headers,
        ..Message::default()
    };
    let params = [
        Param::Int("created", r.created),
        Param::Str("keyid", r.key_id),
        Param::Str("nonce", r.nonce),
        Param::Str("alg", key.alg().as_str()),
    ];
    sign(key, "sig", &msg, &covered, &params, None)
}
