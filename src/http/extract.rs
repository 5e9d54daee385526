//! The verified caller, as handlers receive it.
use super::problem::{Code, Problem};
use crate::auth::Caller;
use crate::domain::{FinanceName, Identity, PartnerCode};
use actix_web::{dev::Payload, FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};

/// The caller the signed-API middleware verified and put in the request's extensions.
fn verified(req: &HttpRequest) -> Result<Caller, Problem> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Problem::internal(&"route reached without the signed-API middleware"))
}

/// Extracts `$caller` from the verified caller through `$from`.
macro_rules! from_verified {
    ($caller:ty, $from:expr) => {
        impl FromRequest for $caller {
            type Error = Problem;
            type Future = Ready<Result<Self, Problem>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(verified(req).and_then($from))
            }
        }
    };
}

/// A partner whose client certificate and request signature both checked out.
pub struct PartnerCaller {
    pub code: PartnerCode,
    pub caller: Caller,
}

from_verified!(
    PartnerCaller,
    |caller: Caller| match caller.identity.clone() {
        Identity::Partner(code) => Ok(PartnerCaller { code, caller }),
        Identity::Finance(_) => Err(Problem::new(Code::Forbidden, "this route is for partners")),
    }
);

/// A finance user whose client certificate (and signature, on non-GET requests) checked out.
pub struct FinanceCaller {
    pub name: FinanceName,
    pub caller: Caller,
}

from_verified!(
    FinanceCaller,
    |caller: Caller| match caller.identity.clone() {
        Identity::Finance(name) => Ok(FinanceCaller { name, caller }),
        Identity::Partner(_) => Err(Problem::new(
            Code::Forbidden,
            "this route is for finance staff"
        )),
    }
);

/// Any verified caller, partner or finance.
pub struct AnyCaller(pub Caller);

from_verified!(AnyCaller, |caller: Caller| Ok(AnyCaller(caller)));
