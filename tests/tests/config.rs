//! `MtlsConfig` from files: what it accepts, and the typed errors that name the file and the
//! problem for what it refuses.

#![allow(clippy::unwrap_used)]

use mtls_tests::{Pki, TempDir};
use mtls_tower::{ConfigError, MtlsConfig};

struct Files {
    dir: TempDir,
    pki: Pki,
}

impl Files {
    fn new() -> Files {
        let pki = Pki::new();
        let dir = TempDir::new("config");
        dir.write("server.pem", &pki.server.chain_pem());
        dir.write("server.key", pki.server.key_pem());
        dir.write("ca.pem", pki.ca.cert_pem());
        Files { dir, pki }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn builder(&self) -> mtls_tower::MtlsConfigBuilder {
        MtlsConfig::builder()
            .server_cert_pem_files(self.path("server.pem"), self.path("server.key"))
            .client_ca_pem_file(self.path("ca.pem"))
    }
}

#[test]
fn pem_files_build_a_config() {
    let f = Files::new();
    let config = f.builder().build().unwrap();
    assert_eq!(
        config.server_config().alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let f = Files::new();
    let err = f
        .builder()
        .client_ca_pem_file(f.path("nope.pem"))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Io {
                what: "client CA bundle",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("nope.pem"), "{err}");
}

#[test]
fn empty_client_ca_bundle_is_an_error() {
    let f = Files::new();
    f.dir.write("empty.pem", "");
    let err = f
        .builder()
        .client_ca_pem_file(f.path("empty.pem"))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::NoCertificates {
                what: "client CA bundle",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("empty.pem holds no certificates"),
        "{err}"
    );
}

#[test]
fn empty_in_memory_client_ca_list_is_an_error() {
    let f = Files::new();
    let err = f.builder().client_ca_certs(vec![]).build().unwrap_err();
    assert!(matches!(err, ConfigError::NoCertificates { .. }), "{err}");
}

#[test]
fn leaf_in_client_ca_bundle_is_an_error_naming_it() {
    let f = Files::new();
    let leaf = f.pki.ca.leaf().common_name("not a ca").build();
    f.dir.write(
        "mixed.pem",
        &format!("{}{}", f.pki.ca.cert_pem(), leaf.cert_pem()),
    );
    let err = f
        .builder()
        .client_ca_pem_file(f.path("mixed.pem"))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::NotACa { index: 1, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("mixed.pem holds a leaf certificate, not a CA"),
        "{msg}"
    );
    assert!(msg.contains("CN=not a ca"), "{msg}");
}

#[test]
fn garbage_pem_is_an_error() {
    let f = Files::new();
    f.dir.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let err = f
        .builder()
        .client_ca_pem_file(f.path("garbage.pem"))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Malformed { .. }), "{err}");
}

#[test]
fn key_file_without_a_key_is_an_error() {
    let f = Files::new();
    f.dir.write("nokey.pem", f.pki.server.cert_pem());
    let err = f
        .builder()
        .server_cert_pem_files(f.path("server.pem"), f.path("nokey.pem"))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::NoPrivateKey { .. }), "{err}");
}

#[test]
fn key_that_does_not_match_the_certificate_is_an_error() {
    let f = Files::new();
    let other = f.pki.ca.leaf().build();
    f.dir.write("other.key", other.key_pem());
    let err = f
        .builder()
        .server_cert_pem_files(f.path("server.pem"), f.path("other.key"))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::KeyMismatch { .. }), "{err}");
    // The message names both files of the pair, in Display and in Debug (what `main` prints
    // for `Result<(), Box<dyn Error>>`).
    let text = err.to_string();
    assert!(
        text.contains(&f.path("server.pem").display().to_string()),
        "{text}"
    );
    assert!(
        text.contains(&f.path("other.key").display().to_string()),
        "{text}"
    );
    assert_eq!(format!("{err:?}"), text);
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert_eq!(format!("{boxed:?}"), text);
}

#[test]
fn every_config_error_names_the_file_it_is_about() {
    let f = Files::new();
    // A CRL whose nextUpdate cannot be read, a bad CRL for rustls, a chain that is no
    // certificate: each message carries the file's path.
    f.dir.write(
        "junk.crl",
        "-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n",
    );
    let crl = f.path("junk.crl");
    let err = f.builder().crl_file(&crl).build().unwrap_err();
    assert!(
        err.to_string().contains(&crl.display().to_string()),
        "{err}"
    );
    f.dir.write(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    let junk = f.path("junk.pem");
    let err = f
        .builder()
        .server_cert_pem_files(&junk, f.path("server.key"))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains(&junk.display().to_string()),
        "{err}"
    );
}

#[test]
fn missing_parts_say_which_call_is_needed() {
    let err = MtlsConfig::builder().build().unwrap_err();
    assert!(err.to_string().contains("server_cert_pem_files"), "{err}");
    let f = Files::new();
    let err = MtlsConfig::builder()
        .server_cert_pem_files(f.path("server.pem"), f.path("server.key"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("client_ca_pem_file"), "{err}");
}

#[test]
fn crl_files_load_as_pem_and_as_der() {
    let f = Files::new();
    let crl = f.pki.ca.crl(&[]);
    f.dir.write("crl.pem", crl.pem());
    std::fs::write(f.path("crl.der"), crl.der().as_ref()).unwrap();
    f.builder().crl_file(f.path("crl.pem")).build().unwrap();
    f.builder().crl_file(f.path("crl.der")).build().unwrap();
}

#[test]
fn crl_file_without_a_crl_is_an_error() {
    let f = Files::new();
    f.dir.write("notacrl.pem", f.pki.ca.cert_pem());
    let err = f
        .builder()
        .crl_file(f.path("notacrl.pem"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no X509 CRL found"), "{err}");
}

#[test]
fn tls13_only_by_default() {
    let f = Files::new();
    let strict = f.builder().build().unwrap().server_config();
    let lax = f.builder().allow_tls12().build().unwrap().server_config();
    // rustls exposes the enabled versions through the provider's suites each config can use.
    assert!(format!("{strict:?}").contains("TLSv1_3"));
    assert!(!format!("{strict:?}").contains("TLSv1_2"), "{strict:?}");
    assert!(format!("{lax:?}").contains("TLSv1_2"));
}

#[test]
fn a_crl_that_rustls_refuses_is_a_verifier_error_naming_the_inputs() {
    let f = Files::new();
    // A DER SEQUENCE that is no CRL. With expired CRLs allowed, nextUpdate is not read first, so
    // rustls is the one that refuses it.
    f.dir.write("bad.crl", "");
    std::fs::write(f.path("bad.crl"), [0x30, 0x03, 0x02, 0x01, 0x00]).unwrap();
    let err = f
        .builder()
        .crl_file(f.path("bad.crl"))
        .allow_expired_crls()
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Verifier { .. }), "{err}");
    assert!(err.to_string().contains("bad.crl"), "{err}");
}

#[test]
fn a_provider_without_tls13_suites_is_a_rustls_error() {
    let f = Files::new();
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.clear();
    let err = f
        .builder()
        .crypto_provider(std::sync::Arc::new(provider))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Rustls(_)), "{err}");
}
