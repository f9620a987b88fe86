//! TLS for Gatehouse's listeners and clients, on rustls with the `ring` provider.
//!
//! A listener's certificate and key come from PEM files and are read again when either
//! file changes, so a renewed certificate is served without a restart: new handshakes get
//! the new one, open connections keep theirs, and files that do not load (half written,
//! or a key that does not match) leave the last good pair in place. Clients trust the
//! system's roots plus, optionally, a private CA from a PEM file.

#![forbid(unsafe_code)]

pub mod connection_limit;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

pub use tokio_rustls::server::TlsStream;
pub use tokio_rustls::TlsAcceptor;

/// How often the certificate files are looked at for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// The PEM files of a listener: the certificate chain (leaf first) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The crypto provider of every TLS configuration here.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's certificate, swapped in place when its files change.
pub struct ReloadingCertificate {
    files: CertificateFiles,
    current: ArcSwap<CertifiedKey>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ReloadingCertificate {
    /// Loads the files once; errors name the file at fault.
    pub fn load(files: CertificateFiles) -> anyhow::Result<Arc<ReloadingCertificate>> {
        let provider = provider();
        let key = certified_key(&files, &provider)?;
        Ok(Arc::new(ReloadingCertificate {
            files,
            current: ArcSwap::from_pointee(key),
            provider,
        }))
    }

    /// The certificate chain served now.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.load().cert.clone()
    }

    /// Reads the files again and serves what they hold, if it loads.
    pub fn reload(&self) -> anyhow::Result<()> {
        let key = certified_key(&self.files, &self.provider)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// Reloads whenever either file's size or modification time changes, until `stop`
    /// turns true.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut seen = stamps(&self.files);
        let mut tick = tokio::time::interval(RELOAD_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let now = stamps(&self.files);
            if now == seen {
                continue;
            }
            match self.reload() {
                Ok(()) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                    seen = now;
                }
                // Tried again at the next change, or the next tick if the files are still
                // being written.
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "TLS certificate files changed but do not load; serving the previous certificate")
                }
            }
        }
    }
}

/// Size and modification time of both files, to notice a change.
fn stamps(files: &CertificateFiles) -> [Option<(u64, SystemTime)>; 2] {
    [&files.cert, &files.key].map(|path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    })
}

fn certified_key(
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", files.cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "no certificate in {}",
        files.cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a private key from {}", files.key.display()))?;
    CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "the key in {} does not go with the certificate in {}",
            files.key.display(),
            files.cert.display()
        )
    })
}

/// A server configuration serving `certificate`, offering `alpn` protocols.
pub fn server_config(
    certificate: Arc<ReloadingCertificate>,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// An acceptor for `files`, and the certificate to [`ReloadingCertificate::watch`].
pub fn acceptor(
    files: CertificateFiles,
    alpn: &[&[u8]],
) -> anyhow::Result<(TlsAcceptor, Arc<ReloadingCertificate>)> {
    let certificate = ReloadingCertificate::load(files)?;
    let config = server_config(certificate.clone(), alpn)?;
    Ok((TlsAcceptor::from(config), certificate))
}

/// The system's root certificates, plus those in the PEM file `extra_ca` if given.
pub fn client_roots(extra_ca: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the system store holds but rustls cannot parse is skipped.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read CA certificates from {}", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("a CA certificate in {} is not usable", path.display()))?;
        }
    }
    Ok(roots)
}

/// A client configuration trusting `roots`, for HTTP/1.1.
pub fn client_config(roots: rustls::RootCertStore) -> anyhow::Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `name`, written to `dir`; returns its files.
    fn write_pair(dir: &Path, name: &str) -> CertificateFiles {
        let pair = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("certificate");
        let files = CertificateFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, pair.cert.pem()).expect("write cert");
        std::fs::write(&files.key, pair.key_pair.serialize_pem()).expect("write key");
        files
    }

    #[test]
    fn files_load_and_reload_and_bad_files_keep_the_last_good_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_pair(dir.path(), "one.test");
        let certificate = ReloadingCertificate::load(files.clone()).expect("loads");
        let first = certificate.chain();

        write_pair(dir.path(), "two.test");
        certificate.reload().expect("reloads");
        let second = certificate.chain();
        assert_ne!(first, second);

        // Half a file, then a key of another certificate: refused, the second pair stays.
        let pem = std::fs::read(&files.cert).expect("read");
        std::fs::write(&files.cert, &pem[..pem.len() / 2]).expect("truncate");
        assert!(certificate.reload().is_err());
        let other = tempfile::tempdir().expect("tempdir");
        let stranger = write_pair(other.path(), "three.test");
        std::fs::write(&files.cert, &pem).expect("restore");
        std::fs::copy(&stranger.key, &files.key).expect("copy");
        let e = certificate.reload().expect_err("mismatched key");
        assert!(format!("{e:#}").contains("does not go with"), "{e:#}");
        assert_eq!(certificate.chain(), second);
    }

    #[test]
    fn missing_files_and_a_missing_ca_are_named() {
        let files = CertificateFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let e = ReloadingCertificate::load(files).expect_err("missing");
        assert!(format!("{e:#}").contains("/nonexistent/cert.pem"), "{e:#}");
        let e = client_roots(Some(Path::new("/nonexistent/ca.pem"))).expect_err("missing");
        assert!(format!("{e:#}").contains("/nonexistent/ca.pem"), "{e:#}");
    }
}
