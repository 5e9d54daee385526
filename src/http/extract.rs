//! The verified caller, as handlers receive it.
use super::problem::Code;
use super::problem::Problem;
use crate::auth::Caller;
use crate::domain::{FinanceName, Identity, PartnerCode};
use actix_web::{dev::Payload, FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};

/// A partner whose client certificate and request signature both checked out.
pub struct PartnerCaller {
    pub code: PartnerCode,
    pub caller: Caller,
}

impl FromRequest for PartnerCaller {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.extensions().get::<Caller>() {
            Some(caller) => match &caller.identity {
                Identity::Partner(code) => Ok(PartnerCaller {
                    code: code.clone(),
                    caller: caller.clone(),
                }),
                Identity::Finance(_) => {
                    Err(Problem::new(Code::Forbidden, "this route is for partners"))
                }
            },
            None => Err(Problem::internal(
                &"route reached without the signed-API middleware",
            )),
        })
    }
}

/// A finance user whose client certificate (and signature, on non-GET requests) checked out.
pub struct FinanceCaller {
    pub name: FinanceName,
    pub caller: Caller,
}

impl FromRequest for FinanceCaller {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.extensions().get::<Caller>() {
            Some(caller) => match &caller.identity {
                Identity::Finance(name) => Ok(FinanceCaller {
                    name: name.clone(),
                    caller: caller.clone(),
                }),
                Identity::Partner(_) => Err(Problem::new(
                    Code::Forbidden,
                    "this route is for finance staff",
                )),
            },
            None => Err(Problem::internal(
                &"route reached without the signed-API middleware",
            )),
        })
    }
}

/// Any verified caller, partner or finance.
pub struct AnyCaller(pub Caller);

impl FromRequest for AnyCaller {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .map(AnyCaller)
                .ok_or_else(|| {
                    Problem::internal(&"route reached without the signed-API middleware")
                }),
        )
    }
}
