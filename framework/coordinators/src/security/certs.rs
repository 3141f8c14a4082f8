//! `cert/request`, `cert/renew` (Go shapes) and `cert/list`.

use serde::Deserialize;
use serde_json::{Value, json};

use bigskies_core::error::{ErrorKind, HandlerError};
use bigskies_security::SecurityError;
use bigskies_security::tls::{CertKind, CertificateRecord};

use super::{SecurityCoordinator, to_json};

/// Go's zero `time.Time`, which its replies carry on failure.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Deserialize)]
pub struct CertRequest {
    pub domain: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub sans: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct CertRenew {
    pub domain: String,
}

fn success(c: &CertificateRecord) -> Value {
    json!({
        "success": true,
        "domain": c.domain,
        "expires_at": c.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "issuer": c.issuer,
    })
}

/// Go's failure shape, with our error code added.
fn failure(domain: &str, e: SecurityError) -> Value {
    let kind = e.kind();
    let message = match kind {
        ErrorKind::Internal => {
            tracing::error!(error = %e, "certificate operation failed");
            "internal error".to_owned()
        }
        _ => e.to_string(),
    };
    json!({"success": false, "domain": domain, "expires_at": GO_ZERO_TIME, "error": message, "error_code": kind})
}

impl SecurityCoordinator {
    pub(super) async fn request_cert(&self, r: CertRequest) -> Result<Value, HandlerError> {
        let Some(kind) = CertKind::parse(&r.kind) else {
            return Ok(json!({
                "success": false, "domain": "", "expires_at": GO_ZERO_TIME,
                "error": "Invalid certificate type", "error_code": ErrorKind::InvalidRequest,
            }));
        };
        Ok(
            match self
                .engines
                .tls
                .request(&r.domain, &r.sans, r.email.as_deref(), kind)
                .await
            {
                Ok(c) => success(&c),
                Err(e) => failure("", e),
            },
        )
    }

    pub(super) async fn renew_cert(&self, r: CertRenew) -> Result<Value, HandlerError> {
        Ok(match self.engines.tls.renew(&r.domain).await {
            Ok(c) => success(&c),
            Err(e) => failure(
                if matches!(e, SecurityError::Invalid(_)) {
                    ""
                } else {
                    &r.domain
                },
                e,
            ),
        })
    }

    pub(super) async fn list_certs(&self) -> Result<Value, HandlerError> {
        let certs = self.engines.tls.list().await?;
        Ok(json!({"success": true, "certificates": to_json(&certs)?}))
    }
}
