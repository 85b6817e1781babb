//! The PKI, shared by every server through PEM files.

use super::*;

/// The test PKI, written to a temporary folder that is removed on drop.
pub(crate) struct Pki {
    /// The folder holding `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
    pub(crate) dir: PathBuf,
    /// The CA that issued every certificate: servers trust it for clients, the client for servers.
    pub(crate) pki: TestPki,
    /// The client certificate every policy admits.
    pub(crate) client: TestCert,
    /// A client certificate from the same CA that the policy denies (`OU=contractors`).
    pub(crate) contractor: TestCert,
}

impl Pki {
    /// Generates the PKI and writes it to a new temporary folder.
    pub(crate) fn create() -> std::io::Result<Pki> {
        let pki = TestPki::new();
        let server = pki.ca.server_cert("localhost");
        let client = pki
            .ca
            .leaf()
            .common_name("billing-api")
            .org_unit("engineering")
            .dns("api.billing.internal")
            .spiffe("spiffe://prod.example/ns/billing/sa/api")
            .build();
        let contractor = pki
            .ca
            .leaf()
            .common_name("billing-tool")
            .org_unit("contractors")
            .dns("tool.billing.internal")
            .spiffe("spiffe://prod.example/ns/billing/sa/tool")
            .build();
        let dir = std::env::temp_dir().join(format!("mtls-loadtest-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("ca.pem"), pki.ca.cert_pem())?;
        std::fs::write(dir.join("server.pem"), server.chain_pem())?;
        std::fs::write(dir.join("server.key"), server.key_pem())?;
        std::fs::write(dir.join("client.pem"), client.chain_pem())?;
        std::fs::write(dir.join("client.key"), client.key_pem())?;
        Ok(Pki {
            dir,
            pki,
            client,
            contractor,
        })
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The one server configuration every Rust server uses: `MtlsConfig`'s defaults (TLS 1.3 only,
/// client certificate with clientAuth EKU required, pinned client CA, ALPN h2 + http/1.1) over the
/// PKI's PEM files. nginx reads the same files.
pub(crate) fn mtls_config(pki_dir: &Path) -> Result<MtlsConfig, mtls_tower::ConfigError> {
    MtlsConfig::builder()
        .server_cert_pem_files(pki_dir.join("server.pem"), pki_dir.join("server.key"))
        .client_ca_pem_file(pki_dir.join("ca.pem"))
        .build()
}
