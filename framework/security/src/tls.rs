//! The TLS security engine: self-signed certificates with rcgen (explicit validity, never the
//! crate's year-4096 default), stored in PostgreSQL, renewed before expiry, and ACME issuance
//! through the [`crate::acme::AcmeIssuer`] trait. Health turns degraded when a certificate is
//! within the renewal window (30 days by default) and unhealthy when one has expired.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, SerialNumber,
};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use bigskies_core::health::HealthReport;

use crate::accounts::go_time;
use crate::acme::AcmeIssuer;
use crate::audit::{AuditEvent, AuditLog, Outcome, events};
use crate::error::{SecurityError, SecurityResult};
use crate::input;
use crate::settings::SettingsHandle;

/// Issuer label of self-signed certificates (as in Go).
pub const SELF_SIGNED: &str = "self-signed";
/// Issuer label of ACME certificates (as in Go).
pub const LETSENCRYPT: &str = "letsencrypt";

/// How a certificate is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    SelfSigned,
    Acme,
}

impl CertKind {
    /// The Go request's `type` field.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "self-signed" | "selfsigned" | "self_signed" => Some(Self::SelfSigned),
            "letsencrypt" | "acme" => Some(Self::Acme),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::SelfSigned => SELF_SIGNED,
            Self::Acme => LETSENCRYPT,
        }
    }
}

/// A stored certificate. The private key is never serialised.
#[derive(Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CertificateRecord {
    pub domain: String,
    pub certificate_pem: String,
    #[serde(skip)]
    pub private_key_pem: String,
    pub sans: Vec<String>,
    pub not_before: Option<DateTime<Utc>>,
    #[serde(with = "go_time")]
    pub expires_at: DateTime<Utc>,
    pub issuer: String,
    #[serde(with = "go_time")]
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for CertificateRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateRecord")
            .field("domain", &self.domain)
            .field("issuer", &self.issuer)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A certificate and key, fresh from an issuer.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The leaf first, then any chain.
    pub certificate_pem: String,
    pub private_key_pem: String,
}

/// Validity of the first certificate in `pem`.
pub fn validity(pem: &str) -> SecurityResult<(DateTime<Utc>, DateTime<Utc>)> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| SecurityError::Certificate(format!("PEM: {e}")))?;
    let x = p
        .parse_x509()
        .map_err(|e| SecurityError::Certificate(format!("X.509: {e}")))?;
    let v = x.validity();
    let to = |t: i64| {
        Utc.timestamp_opt(t, 0)
            .single()
            .ok_or_else(|| SecurityError::Certificate("time out of range".into()))
    };
    Ok((to(v.not_before.timestamp())?, to(v.not_after.timestamp())?))
}

/// Make a self-signed ECDSA P-256 server certificate for `domain` (+ `sans`), valid from a
/// minute ago for `validity`.
pub fn self_signed(
    domain: &str,
    sans: &[String],
    validity: std::time::Duration,
) -> SecurityResult<IssuedCertificate> {
    let mut names = vec![domain.to_owned()];
    names.extend(sans.iter().filter(|s| *s != domain).cloned());
    let mut p =
        CertificateParams::new(names).map_err(|e| SecurityError::Certificate(e.to_string()))?;
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::minutes(1);
    p.not_after = now
        + time::Duration::try_from(validity)
            .map_err(|e| SecurityError::Certificate(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "BIG SKIES Framework");
    dn.push(DnType::CommonName, domain);
    p.distinguished_name = dn;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut serial = rand::random::<[u8; 16]>();
    serial[0] &= 0x7f; // positive
    p.serial_number = Some(SerialNumber::from(serial.to_vec()));
    let key = KeyPair::generate().map_err(|e| SecurityError::Certificate(e.to_string()))?;
    let cert = p
        .self_signed(&key)
        .map_err(|e| SecurityError::Certificate(e.to_string()))?;
    Ok(IssuedCertificate {
        certificate_pem: cert.pem(),
        private_key_pem: key.serialize_pem(),
    })
}

const COLUMNS: &str =
    "domain, certificate_pem, private_key_pem, sans, not_before, expires_at, issuer, updated_at";

/// Certificates: issue, store, renew, watch. Cheap to clone.
#[derive(Clone)]
pub struct TlsEngine {
    pool: PgPool,
    settings: SettingsHandle,
    audit: AuditLog,
    acme: Option<Arc<dyn AcmeIssuer>>,
}

impl std::fmt::Debug for TlsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsEngine")
            .field("acme", &self.acme.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsEngine {
    pub fn new(pool: PgPool, settings: SettingsHandle, audit: AuditLog) -> Self {
        Self {
            pool,
            settings,
            audit,
            acme: None,
        }
    }

    pub fn with_acme(mut self, acme: Arc<dyn AcmeIssuer>) -> Self {
        self.acme = Some(acme);
        self
    }

    /// Issue (or re-issue) a certificate for `domain` and store it.
    pub async fn request(
        &self,
        domain: &str,
        sans: &[String],
        email: Option<&str>,
        kind: CertKind,
    ) -> SecurityResult<CertificateRecord> {
        let domain = input::domain(domain)?;
        if sans.len() > 32 {
            return Err(SecurityError::invalid(
                "at most 32 subject alternative names",
            ));
        }
        let sans = sans
            .iter()
            .map(|s| input::domain(s))
            .collect::<SecurityResult<Vec<_>>>()?;
        let issued = match kind {
            CertKind::SelfSigned => {
                let validity = self.settings.get().cert_validity;
                let (d, s) = (domain.clone(), sans.clone());
                tokio::task::spawn_blocking(move || self_signed(&d, &s, validity))
                    .await
                    .map_err(|e| {
                        SecurityError::Certificate(format!("issuing task failed: {e}"))
                    })??
            }
            CertKind::Acme => {
                let acme = self
                    .acme
                    .as_ref()
                    .ok_or_else(|| SecurityError::Acme("no ACME issuer is configured".into()))?;
                let email =
                    email.ok_or_else(|| SecurityError::invalid("email is required for ACME"))?;
                input::email(email)?;
                acme.issue(&domain, &sans, email).await?
            }
        };
        let record = self.store(&domain, &sans, &issued, kind.label()).await?;
        self.audit
            .record(
                AuditEvent::new(events::CERTIFICATE, Outcome::Success)
                    .target(domain.clone())
                    .detail(json!({"issuer": kind.label(), "expires_at": record.expires_at.to_rfc3339()})),
            )
            .await;
        Ok(record)
    }

    async fn store(
        &self,
        domain: &str,
        sans: &[String],
        issued: &IssuedCertificate,
        issuer: &str,
    ) -> SecurityResult<CertificateRecord> {
        let (not_before, expires_at) = validity(&issued.certificate_pem)?;
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tls_certificates (domain, certificate_pem, private_key_pem, sans, not_before, expires_at, issuer)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (domain) DO UPDATE SET certificate_pem = EXCLUDED.certificate_pem,
                 private_key_pem = EXCLUDED.private_key_pem, sans = EXCLUDED.sans, not_before = EXCLUDED.not_before,
                 expires_at = EXCLUDED.expires_at, issuer = EXCLUDED.issuer, updated_at = now()
             RETURNING {COLUMNS}"
        )))
        .bind(domain)
        .bind(&issued.certificate_pem)
        .bind(&issued.private_key_pem)
        .bind(sans)
        .bind(not_before)
        .bind(expires_at)
        .bind(issuer)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn get(&self, domain: &str) -> SecurityResult<CertificateRecord> {
        let domain = input::domain(domain)?;
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tls_certificates WHERE domain = $1"
        )))
        .bind(&domain)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| SecurityError::NotFound("Certificate".into()))
    }

    pub async fn list(&self) -> SecurityResult<Vec<CertificateRecord>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tls_certificates ORDER BY domain"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Renew with the stored certificate's issuer (ACME for `letsencrypt`, else self-signed).
    pub async fn renew(&self, domain: &str) -> SecurityResult<CertificateRecord> {
        let current = self.get(domain).await?;
        let kind = if current.issuer == LETSENCRYPT {
            CertKind::Acme
        } else {
            CertKind::SelfSigned
        };
        let email = match kind {
            CertKind::Acme => self.acme.as_ref().map(|a| a.contact().to_owned()),
            CertKind::SelfSigned => None,
        };
        self.request(&current.domain, &current.sans, email.as_deref(), kind)
            .await
    }

    /// Certificates expiring within `window`.
    pub async fn expiring_within(
        &self,
        window: std::time::Duration,
    ) -> SecurityResult<Vec<CertificateRecord>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tls_certificates WHERE expires_at < now() + make_interval(secs => $1) ORDER BY expires_at"
        )))
        .bind(window.as_secs_f64())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Renew everything inside the renewal window; returns the renewed domains.
    pub async fn renew_due(&self) -> Vec<(String, SecurityResult<DateTime<Utc>>)> {
        let window = self.settings.get().cert_renew_before;
        let due = match self.expiring_within(window).await {
            Ok(d) => d,
            Err(e) => return vec![("*".into(), Err(e))],
        };
        let mut out = Vec::new();
        for c in due {
            let r = self.renew(&c.domain).await.map(|r| r.expires_at);
            out.push((c.domain, r));
        }
        out
    }

    /// Healthy when nothing is close to expiry; degraded within the renewal window; unhealthy
    /// when a certificate has expired.
    pub async fn health(&self) -> HealthReport {
        let window = self.settings.get().cert_renew_before;
        match self.expiring_within(window).await {
            Err(e) => HealthReport::unhealthy("tls", format!("certificate store unavailable: {e}")),
            Ok(list) if list.is_empty() => {
                HealthReport::healthy("tls", "no certificate close to expiry")
            }
            Ok(list) => {
                let now = Utc::now();
                let expired: Vec<&str> = list
                    .iter()
                    .filter(|c| c.expires_at <= now)
                    .map(|c| c.domain.as_str())
                    .collect();
                let soon: Vec<&str> = list
                    .iter()
                    .filter(|c| c.expires_at > now)
                    .map(|c| c.domain.as_str())
                    .collect();
                let report = if expired.is_empty() {
                    HealthReport::degraded(
                        "tls",
                        format!(
                            "{} certificate(s) expire within {} days",
                            soon.len(),
                            window.as_secs() / 86_400
                        ),
                    )
                } else {
                    HealthReport::unhealthy(
                        "tls",
                        format!("{} certificate(s) have expired", expired.len()),
                    )
                };
                report
                    .with_detail("expired", json!(expired))
                    .with_detail("expiring", json!(soon))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn self_signed_certificates_have_the_validity_asked_for() {
        let c = self_signed(
            "obs.example.org",
            &["alt.example.org".into()],
            Duration::from_secs(90 * 86_400),
        )
        .unwrap();
        let (nb, na) = validity(&c.certificate_pem).unwrap();
        let days = (na - Utc::now()).num_days();
        assert!((89..=90).contains(&days), "{days}");
        assert!(nb < Utc::now());
        assert!(c.private_key_pem.contains("PRIVATE KEY"));
        let (_, p) = x509_parser::pem::parse_x509_pem(c.certificate_pem.as_bytes()).unwrap();
        let x = p.parse_x509().unwrap();
        let sans = x.subject_alternative_name().unwrap().unwrap();
        assert_eq!(sans.value.general_names.len(), 2);
    }

    #[test]
    fn kinds_parse_like_go() {
        assert_eq!(CertKind::parse("self-signed"), Some(CertKind::SelfSigned));
        assert_eq!(CertKind::parse("letsencrypt"), Some(CertKind::Acme));
        assert_eq!(CertKind::parse("other"), None);
    }
}
