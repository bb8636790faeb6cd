//! Throw-away CA and server certificate, made with the `openssl` CLI (no extra crates, no aws-lc-rs).

use std::fs;
use std::process::Command;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::run;

/// A rustls server config for 127.0.0.1 / localhost, and the PEM of the CA that signed its certificate.
pub(crate) fn server_config() -> (Arc<ServerConfig>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);
    let ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout"];

    run(Command::new("openssl")
        .args(["req", "-x509", "-new", "-days", "7", "-subj", "/CN=keptn-testgit CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .args(ec_key)
        .arg(path("ca.key"))
        .arg("-out")
        .arg(path("ca.pem")));
    run(Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=localhost"])
        .args(ec_key)
        .arg(path("server.key"))
        .arg("-out")
        .arg(path("server.csr")));
    // webpki checks the SAN (not the CN) and refuses end-entity certificates that claim to be a CA.
    fs::write(
        path("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "7", "-in"])
        .arg(path("server.csr"))
        .arg("-CA")
        .arg(path("ca.pem"))
        .arg("-CAkey")
        .arg(path("ca.key"))
        .arg("-extfile")
        .arg(path("server.ext"))
        .arg("-out")
        .arg(path("server.pem")));

    let read = |name: &str| fs::read(path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
    let ca_pem = String::from_utf8(read("ca.pem")).expect("ca.pem is UTF-8");
    let certs = CertificateDer::pem_slice_iter(&read("server.pem")).collect::<Result<Vec<_>, _>>().expect("server.pem");
    let key = PrivateKeyDer::from_pem_slice(&read("server.key")).expect("server.key");

    // Only ring is allowed in this workspace; installing it as the process default is what the code under test
    // expects too (it fails silently when a provider is already installed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(config), ca_pem)
}
