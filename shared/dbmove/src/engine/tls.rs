//! TLS to the database servers, with rustls on the aws-lc-rs provider that the AWS SDK
//! already brings (no OpenSSL, no second stack). The URL says what it wants, as each
//! engine's own clients do: PostgreSQL `sslmode=disable|prefer|require|verify-ca|verify-full`
//! and `sslrootcert=PATH`; MySQL/MariaDB `ssl-mode=DISABLED|PREFERRED|REQUIRED|VERIFY_CA|
//! VERIFY_IDENTITY` and `ssl-ca=PATH`. Parsing is here; each driver applies the result.
//!
//! The CA may also be the process's own bundle, [`set_ca_bundle`]: a URL names it with
//! `sslrootcert=bundle` (`ssl-ca=bundle`), so that a configuration shared by functions that
//! run on different machines names no file path. The step Lambdas load it at their cold
//! start from the data bucket; the CLI from `A2A_DB_CA_BUNDLE`.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use a2a_core::Locator;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::Engine;
use crate::DbError;

/// How much TLS a connection asks for (libpq's names; MySQL's map one to one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Plain text only.
    Disable,
    /// TLS if the server offers it, certificate not checked (both clients' default).
    Prefer,
    /// TLS or fail; the certificate checked against the CA only if one is given.
    Require,
    /// TLS, the certificate chain checked against the CA; the host name not.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

/// The TLS settings of one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tls {
    /// The mode asked for (the engine's default when the URL says nothing).
    pub mode: Mode,
    /// The CA bundle (PEM) to check the server's certificate against; without it, the
    /// public web roots.
    pub ca: Option<Ca>,
}

/// Where a URL's CA bundle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ca {
    /// A PEM file.
    File(PathBuf),
    /// The process's bundle ([`set_ca_bundle`]), named by [`BUNDLE`].
    Bundle,
}

/// The value of `sslrootcert`/`ssl-ca` that names the process's bundle.
pub const BUNDLE: &str = "bundle";

/// The process's CA bundle: where it came from (for messages), its PEM and its
/// certificates.
struct Loaded {
    from: String,
    pem: Vec<u8>,
    certs: Vec<CertificateDer<'static>>,
}

static LOADED: RwLock<Option<Arc<Loaded>>> = RwLock::new(None);

/// Makes `pem` the CA bundle of every URL that says `sslrootcert=bundle` or
/// `ssl-ca=bundle`, from then on; `from` says where it came from, in messages (an S3 key, a
/// file). Returns how many certificates it holds; a bundle with none, or one that does not
/// parse, is an input error naming `from`. A later call replaces it.
pub fn set_ca_bundle(from: &str, pem: &[u8]) -> Result<usize, DbError> {
    let bad = |why: String| DbError::Input(format!("the CA bundle {from}: {why}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    let n = certs.len();
    *LOADED.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Loaded {
        from: from.to_owned(),
        pem: pem.to_vec(),
        certs,
    }));
    Ok(n)
}

/// The process's bundle, or an input error saying how to give one.
fn loaded(loc: &Locator) -> Result<Arc<Loaded>, DbError> {
    LOADED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or_else(|| {
            DbError::Input(format!(
                "{loc}: names the CA bundle ({BUNDLE}), and none was loaded: in AWS, set the \
                 template's DatabaseCaBundleKey to the bundle's key in the data bucket; here, \
                 set A2A_DB_CA_BUNDLE to its file"
            ))
        })
}

impl Ca {
    /// The bundle's certificates and its PEM text (mysql_async takes the PEM).
    pub(crate) fn read(
        &self,
        loc: &Locator,
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<u8>), DbError> {
        match self {
            Ca::File(path) => {
                let certs = read_ca(loc, path)?;
                let pem = std::fs::read(path).map_err(|e| {
                    DbError::Input(format!("{loc}: the CA bundle {}: {e}", path.display()))
                })?;
                Ok((certs, pem))
            }
            Ca::Bundle => {
                let b = loaded(loc)?;
                Ok((b.certs.clone(), b.pem.clone()))
            }
        }
    }

    /// How messages name it.
    fn shown(&self) -> String {
        match self {
            Ca::File(p) => p.display().to_string(),
            Ca::Bundle => match &*LOADED.read().unwrap_or_else(PoisonError::into_inner) {
                Some(b) => format!("{} ({BUNDLE})", b.from),
                None => format!("({BUNDLE}, not loaded)"),
            },
        }
    }
}

impl Tls {
    /// The mode in effect: `require` with a CA checks the chain, as libpq does.
    pub fn effective(&self) -> Mode {
        match (self.mode, &self.ca) {
            (Mode::Require, Some(_)) => Mode::VerifyCa,
            (m, _) => m,
        }
    }
}

/// The parameter names and values of an engine's URLs.
struct Names {
    mode: &'static str,
    ca: &'static str,
    values: [&'static str; 5],
}

fn names(engine: Engine) -> Names {
    match engine {
        Engine::MySql => Names {
            mode: "ssl-mode",
            ca: "ssl-ca",
            values: [
                "DISABLED",
                "PREFERRED",
                "REQUIRED",
                "VERIFY_CA",
                "VERIFY_IDENTITY",
            ],
        },
        _ => Names {
            mode: "sslmode",
            ca: "sslrootcert",
            values: ["disable", "prefer", "require", "verify-ca", "verify-full"],
        },
    }
}

/// Splits a URL into the URL its driver is given (without the TLS parameters) and its
/// TLS settings. An unknown mode is an input error naming the parameter and the values
/// understood.
pub(crate) fn split(loc: &Locator, engine: Engine) -> Result<(String, Tls), DbError> {
    let n = names(engine);
    let url = loc.expose();
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let mut tls = Tls {
        mode: Mode::Prefer,
        ca: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == n.mode {
            let modes = [
                Mode::Disable,
                Mode::Prefer,
                Mode::Require,
                Mode::VerifyCa,
                Mode::VerifyFull,
            ];
            let i = n
                .values
                .iter()
                .position(|x| x.eq_ignore_ascii_case(&a2a_core::percent_decode(v)))
                .ok_or_else(|| {
                    DbError::Input(format!(
                        "{loc}: {}={v:?} is not one of {}",
                        n.mode,
                        n.values.join(", ")
                    ))
                })?;
            tls.mode = modes[i];
        } else if k == n.ca {
            let path = a2a_core::percent_decode(v);
            if path.is_empty() {
                return Err(DbError::Input(format!(
                    "{loc}: {} names no file; give the CA bundle's path",
                    n.ca
                )));
            }
            tls.ca = Some(if path == BUNDLE {
                Ca::Bundle
            } else {
                Ca::File(PathBuf::from(path))
            });
        } else {
            kept.push(pair);
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, tls))
}

/// The certificates of a PEM bundle; a file that cannot be read or holds none is an
/// input error naming it.
pub(crate) fn read_ca(
    loc: &Locator,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, DbError> {
    let bad =
        |why: String| DbError::Input(format!("{loc}: the CA bundle {}: {why}", path.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls client configuration of a mode: `None` for `disable`.
pub(crate) fn client_config(
    loc: &Locator,
    tls: &Tls,
) -> Result<Option<rustls::ClientConfig>, DbError> {
    let mode = tls.effective();
    if mode == Mode::Disable {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            for cert in ca.read(loc)?.0 {
                roots.add(cert).map_err(|e| {
                    DbError::Input(format!("{loc}: the CA bundle {}: {e}", ca.shown()))
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| DbError::Input(format!("{loc}: TLS: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Input(format!("{loc}: TLS: {e}")))?;
    let config = match mode {
        Mode::VerifyFull => builder.with_webpki_verifier(webpki),
        m => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient {
                inner: webpki,
                check_chain: m == Mode::VerifyCa,
            })),
    }
    .with_no_client_auth();
    Ok(Some(config))
}

/// `prefer`/`require` (nothing checked but the handshake's signatures) and `verify-ca`
/// (the chain checked, the name not).
#[derive(Debug)]
struct Lenient {
    inner: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The error of a connection that failed: a certificate that did not verify is said so,
/// naming the host and what to do; anything else is the server being unreachable.
pub(crate) fn refused(loc: &Locator, host: &str, tls: &Tls, e: &dyn std::fmt::Display) -> DbError {
    let msg = e.to_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        let against = match &tls.ca {
            Some(ca) => format!("the CA bundle {}", ca.shown()),
            None => "the public web roots (no CA bundle given)".into(),
        };
        let param = names(loc_engine(loc)).ca;
        return DbError::Unreachable(format!(
            "the TLS certificate of the database server {host} does not verify against {against}: \
             {msg}; give its CA with {param}=PATH (RDS/Aurora: the region's CA bundle); {loc}"
        ));
    }
    if lower.contains("asked for ssl but server does not") {
        let n = names(loc_engine(loc));
        return DbError::Unreachable(format!(
            "the database server {host} does not speak TLS, and this connection requires it: \
             enable TLS on the server, or ask for {}={} (not for a server across a network); {loc}",
            n.mode, n.values[1]
        ));
    }
    // PostgreSQL's pg_hba refusal; MariaDB's `require_secure_transport`.
    if lower.contains("no encryption") || lower.contains("insecure transport") {
        let (mode, values) = {
            let n = names(loc_engine(loc));
            (n.mode, format!("{} or {}", n.values[2], n.values[4]))
        };
        return DbError::Unreachable(format!(
            "the database server {host} accepts only TLS connections and this one asked for none \
             ({mode} disabled): use {mode}={values}; {loc}: {msg}"
        ));
    }
    DbError::Unreachable(format!("cannot reach the database {loc}: {msg}"))
}

fn loc_engine(loc: &Locator) -> Engine {
    Engine::of(loc).unwrap_or(Engine::Postgres)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &str) -> Result<(String, Tls), DbError> {
        split(&Locator::new(url), Engine::Postgres)
    }

    fn my(url: &str) -> Result<(String, Tls), DbError> {
        split(&Locator::new(url), Engine::MySql)
    }

    #[test]
    fn postgres_modes_and_the_ca_are_taken_out_of_the_url() {
        let (url, tls) =
            pg("postgres://a2a:pw@db:5432/x?sslmode=verify-full&sslrootcert=/etc/rds/global-bundle.pem&connect_timeout=5")
                .unwrap();
        assert_eq!(url, "postgres://a2a:pw@db:5432/x?connect_timeout=5");
        assert_eq!(tls.mode, Mode::VerifyFull);
        assert_eq!(
            tls.ca,
            Some(Ca::File(PathBuf::from("/etc/rds/global-bundle.pem")))
        );
        for (v, m) in [
            ("disable", Mode::Disable),
            ("prefer", Mode::Prefer),
            ("require", Mode::Require),
            ("verify-ca", Mode::VerifyCa),
            ("verify-full", Mode::VerifyFull),
        ] {
            let (url, tls) = pg(&format!("postgres://db/x?sslmode={v}")).unwrap();
            assert_eq!((url.as_str(), tls.mode), ("postgres://db/x", m), "{v}");
        }
        let (_, tls) = pg("postgres://db/x").unwrap();
        assert_eq!((tls.mode, tls.ca), (Mode::Prefer, None), "libpq's default");
    }

    #[test]
    fn mysql_modes_and_the_ca_are_taken_out_of_the_url() {
        let (url, tls) =
            my("mysql://u:pw@db/x?ssl-mode=VERIFY_IDENTITY&ssl-ca=%2Fca%20dir%2Fca.pem").unwrap();
        assert_eq!(url, "mysql://u:pw@db/x");
        assert_eq!(tls.mode, Mode::VerifyFull);
        assert_eq!(tls.ca, Some(Ca::File(PathBuf::from("/ca dir/ca.pem"))));
        let (_, tls) = my("mysql://db/x?ssl-mode=VERIFY_IDENTITY&ssl-ca=bundle").unwrap();
        assert_eq!(tls.ca, Some(Ca::Bundle));
        for (v, m) in [
            ("DISABLED", Mode::Disable),
            ("preferred", Mode::Prefer),
            ("REQUIRED", Mode::Require),
            ("VERIFY_CA", Mode::VerifyCa),
        ] {
            let (_, tls) = my(&format!("mysql://db/x?ssl-mode={v}")).unwrap();
            assert_eq!(tls.mode, m, "{v}");
        }
        // The other engine's names are not ours: left for the driver (which refuses them).
        let (url, tls) = my("mysql://db/x?sslmode=disable").unwrap();
        assert_eq!(
            (url.as_str(), tls.mode),
            ("mysql://db/x?sslmode=disable", Mode::Prefer)
        );
    }

    #[test]
    fn a_mode_not_understood_is_refused_by_name_with_the_password_hidden() {
        let e = pg("postgres://u:secret@db/x?sslmode=verify_full").unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, DbError::Input(_)));
        assert!(
            m.contains("sslmode=\"verify_full\"") && m.contains("verify-full"),
            "{m}"
        );
        assert!(!m.contains("secret"), "{m}");
        let m = my("mysql://db/x?ssl-mode=ON").unwrap_err().to_string();
        assert!(
            m.contains("ssl-mode") && m.contains("VERIFY_IDENTITY"),
            "{m}"
        );
        assert!(pg("postgres://db/x?sslrootcert=").is_err());
    }

    #[test]
    fn require_with_a_ca_checks_the_chain() {
        let (_, tls) = pg("postgres://db/x?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert_eq!(tls.effective(), Mode::VerifyCa);
        let (_, tls) = pg("postgres://db/x?sslmode=require").unwrap();
        assert_eq!(tls.effective(), Mode::Require);
    }

    #[test]
    fn a_ca_bundle_that_is_missing_or_empty_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Locator::new("postgres://db/x");
        let missing = dir.path().join("none.pem");
        let m = read_ca(&loc, &missing).unwrap_err().to_string();
        assert!(m.contains("none.pem"), "{m}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let m = read_ca(&loc, &empty).unwrap_err().to_string();
        assert!(
            m.contains("empty.pem") && m.contains("no PEM certificate"),
            "{m}"
        );
    }

    #[test]
    fn every_mode_but_disable_makes_a_client_config() {
        let loc = Locator::new("postgres://db/x");
        for mode in [
            Mode::Prefer,
            Mode::Require,
            Mode::VerifyCa,
            Mode::VerifyFull,
        ] {
            let tls = Tls { mode, ca: None };
            assert!(client_config(&loc, &tls).unwrap().is_some(), "{mode:?}");
        }
        let tls = Tls {
            mode: Mode::Disable,
            ca: None,
        };
        assert!(client_config(&loc, &tls).unwrap().is_none());
    }

    #[test]
    fn a_certificate_failure_names_the_host_and_the_way_out() {
        let loc = Locator::new("postgres://u:secret@db.example:5432/x");
        let tls = Tls {
            mode: Mode::VerifyFull,
            ca: Some(Ca::File(PathBuf::from("ca.pem"))),
        };
        let e = refused(
            &loc,
            "db.example",
            &tls,
            &"invalid peer certificate: UnknownIssuer",
        );
        let m = e.to_string();
        assert!(matches!(e, DbError::Unreachable(_)));
        assert!(
            m.contains("db.example") && m.contains("ca.pem") && m.contains("sslrootcert"),
            "{m}"
        );
        assert!(!m.contains("secret"), "{m}");
        let m = refused(&loc, "db.example", &tls, &"connection refused").to_string();
        assert!(m.starts_with("cannot reach the database"), "{m}");
    }
}
