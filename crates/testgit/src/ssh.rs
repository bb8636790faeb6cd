//! SSH git remote: a private `sshd` child process that lets root in with two generated client keys.

use std::fs::{self, File};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::run;

const SSHD: &str = "/usr/sbin/sshd";
const PASSPHRASE: &str = "s3cret";

/// A private sshd on 127.0.0.1 that runs until dropped; git reaches repositories by their absolute path.
pub struct SshRemote {
    port: u16,
    child: Child,
    dir: TempDir,
}

impl SshRemote {
    /// Starts sshd in the foreground with its own host key, config and authorized keys in a temp dir, and waits
    /// until it accepts connections.
    pub fn start() -> SshRemote {
        assert!(Path::new(SSHD).exists(), "{SSHD} is missing: install the openssh-server package");
        let dir = tempfile::tempdir().expect("tempdir");
        keygen(&dir.path().join("host_key"), &["-t", "ed25519"], "");
        // RSA in PEM (PKCS#1) format: libssh2's OpenSSL backend reads it from memory, with and without passphrase.
        keygen(&dir.path().join("id_rsa"), &["-t", "rsa", "-b", "2048", "-m", "PEM"], "");
        keygen(&dir.path().join("id_rsa_passphrase"), &["-t", "rsa", "-b", "2048", "-m", "PEM"], PASSPHRASE);
        let authorized: String = ["id_rsa.pub", "id_rsa_passphrase.pub"]
            .iter()
            .map(|name| fs::read_to_string(dir.path().join(name)).expect("read public key"))
            .collect();
        fs::write(dir.path().join("authorized_keys"), authorized).expect("write authorized_keys");
        // sshd refuses to start without its privilege separation directory, which containers often lack.
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");

        // The free port may be taken again before sshd binds it; a few attempts make that race harmless.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = crate::free_port();
            let mut child = spawn_sshd(dir.path(), port);
            match wait_for_port(&mut child, port) {
                Ok(()) => return SshRemote { port, child, dir },
                Err(()) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default();
                }
            }
        }
        panic!("sshd did not start; its log:\n{last_log}");
    }

    /// "ssh://root@127.0.0.1:<port><absolute path of repo>"
    pub fn url(&self, repo_path: &Path) -> String {
        let path = repo_path.canonicalize().unwrap_or_else(|_| repo_path.to_path_buf());
        assert!(path.is_absolute(), "ssh remotes need an absolute repository path, got {}", path.display());
        format!("ssh://root@127.0.0.1:{}{}", self.port, path.display())
    }

    /// PEM (PKCS#1 RSA) of an authorized key without passphrase.
    pub fn private_key_pem(&self) -> String {
        self.read("id_rsa")
    }

    /// PEM (encrypted PKCS#1 RSA) of an authorized key and its passphrase.
    pub fn private_key_with_passphrase_pem(&self) -> (String, String) {
        (self.read("id_rsa_passphrase"), PASSPHRASE.to_owned())
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }
}

impl Drop for SshRemote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path, kind: &[&str], passphrase: &str) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-C", "keptn-testgit", "-N", passphrase])
        .args(kind)
        .arg("-f")
        .arg(path));
}

fn spawn_sshd(dir: &Path, port: u16) -> Child {
    let file = |name: &str| -> PathBuf { dir.join(name) };
    let config = format!(
        "ListenAddress 127.0.0.1:{port}\n\
         HostKey {}\n\
         PidFile {}\n\
         AuthorizedKeysFile {}\n\
         StrictModes no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\n\
         UsePAM no\n\
         LogLevel VERBOSE\n",
        file("host_key").display(),
        file("sshd.pid").display(),
        file("authorized_keys").display(),
    );
    fs::write(file("sshd_config"), config).expect("write sshd_config");
    let log = File::create(file("sshd.log")).expect("create sshd.log");
    // -D: stay in the foreground as our child so Drop can kill it; -e: log to stderr (the log file).
    Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(file("sshd_config"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"))
}

fn wait_for_port(child: &mut Child, port: u16) -> Result<(), ()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if child.try_wait().ok().flatten().is_some() {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(())
}
