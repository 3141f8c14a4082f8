//! ACME issuance behind a trait, so the TLS engine does not depend on a live CA in tests and a
//! deployment can choose its challenge type.
//!
//! [`InstantAcme`] runs the http-01 flow with `instant-acme`: it publishes each key
//! authorization through an [`Http01Responder`] (whatever serves
//! `/.well-known/acme-challenge/<token>` on port 80), asks the CA to validate, finalizes with an
//! rcgen CSR and downloads the chain.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};

use crate::error::{SecurityError, SecurityResult};
use crate::tls::IssuedCertificate;

/// Something that can get a CA-signed certificate.
pub trait AcmeIssuer: Send + Sync + 'static {
    /// Obtain a certificate for `domain` plus `sans`, registering `email` as contact.
    fn issue<'a>(
        &'a self,
        domain: &'a str,
        sans: &'a [String],
        email: &'a str,
    ) -> BoxFuture<'a, SecurityResult<IssuedCertificate>>;

    /// The contact used for renewals.
    fn contact(&self) -> &str;
}

/// Publishes http-01 key authorizations.
pub trait Http01Responder: Send + Sync + 'static {
    fn present(&self, token: &str, key_authorization: &str);
    fn cleanup(&self, token: &str);
}

/// An in-memory responder: an HTTP handler serves [`MemoryResponder::get`].
#[derive(Clone, Debug, Default)]
pub struct MemoryResponder(Arc<RwLock<HashMap<String, String>>>);

impl MemoryResponder {
    /// The key authorization for `token`, if a challenge is pending.
    pub fn get(&self, token: &str) -> Option<String> {
        self.0.read().ok().and_then(|m| m.get(token).cloned())
    }
}

impl Http01Responder for MemoryResponder {
    fn present(&self, token: &str, key_authorization: &str) {
        if let Ok(mut m) = self.0.write() {
            m.insert(token.to_owned(), key_authorization.to_owned());
        }
    }

    fn cleanup(&self, token: &str) {
        if let Ok(mut m) = self.0.write() {
            m.remove(token);
        }
    }
}

/// ACME through `instant-acme`.
pub struct InstantAcme {
    pub directory_url: String,
    /// Extra root for the CA's own TLS (Pebble's test CA); `None` uses the web PKI.
    pub root_pem: Option<PathBuf>,
    pub contact: String,
    pub responder: Arc<dyn Http01Responder>,
}

impl std::fmt::Debug for InstantAcme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstantAcme")
            .field("directory_url", &self.directory_url)
            .finish_non_exhaustive()
    }
}

fn acme_err(what: &str) -> impl Fn(instant_acme::Error) -> SecurityError + '_ {
    move |e| SecurityError::Acme(format!("{what}: {e}"))
}

impl InstantAcme {
    async fn run(
        &self,
        domain: &str,
        sans: &[String],
        email: &str,
    ) -> SecurityResult<IssuedCertificate> {
        let builder = match &self.root_pem {
            Some(p) => Account::builder_with_root(p),
            None => Account::builder(),
        }
        .map_err(acme_err("HTTP client"))?;
        let contact = format!("mailto:{email}");
        let (account, _credentials) = builder
            .create(
                &NewAccount {
                    contact: &[contact.as_str()],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.directory_url.clone(),
                None,
            )
            .await
            .map_err(acme_err("account"))?;
        let mut identifiers = vec![Identifier::Dns(domain.to_owned())];
        identifiers.extend(
            sans.iter()
                .filter(|s| s.as_str() != domain)
                .map(|s| Identifier::Dns(s.clone())),
        );
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(acme_err("order"))?;
        let mut tokens = Vec::new();
        {
            let mut authorizations = order.authorizations();
            while let Some(result) = authorizations.next().await {
                let mut authz = result.map_err(acme_err("authorization"))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(SecurityError::Acme(format!("authorization is {other:?}")));
                    }
                }
                let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
                    SecurityError::Acme("the CA offers no http-01 challenge".into())
                })?;
                self.responder
                    .present(&challenge.token, challenge.key_authorization().as_str());
                tokens.push(challenge.token.clone());
                challenge.set_ready().await.map_err(acme_err("challenge"))?;
            }
        }
        let result = async {
            let status = order
                .poll_ready(&RetryPolicy::default())
                .await
                .map_err(acme_err("validation"))?;
            if status != OrderStatus::Ready {
                return Err(SecurityError::Acme(format!(
                    "order is {status:?}, not ready"
                )));
            }
            let private_key_pem = order.finalize().await.map_err(acme_err("finalize"))?;
            let certificate_pem = order
                .poll_certificate(&RetryPolicy::default())
                .await
                .map_err(acme_err("certificate"))?;
            Ok(IssuedCertificate {
                certificate_pem,
                private_key_pem,
            })
        }
        .await;
        for t in &tokens {
            self.responder.cleanup(t);
        }
        result
    }
}

impl AcmeIssuer for InstantAcme {
    fn issue<'a>(
        &'a self,
        domain: &'a str,
        sans: &'a [String],
        email: &'a str,
    ) -> BoxFuture<'a, SecurityResult<IssuedCertificate>> {
        Box::pin(self.run(domain, sans, email))
    }

    fn contact(&self) -> &str {
        &self.contact
    }
}
