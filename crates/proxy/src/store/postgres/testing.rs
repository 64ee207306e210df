//! A real PostgreSQL for tests: the cluster `scripts/test` started (its superuser's URL in
//! `LEDGERLINK_TEST_PG_URL`), or, for a plain `cargo test`, one started for this test binary in a
//! temporary directory on a free port with `fsync=off` (as the `postgres` user when run as root:
//! `initdb` and `postgres` refuse root), which stops and is removed when the binary ends. Each
//! test gets a database of its own, dropped after it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{PoolSettings, PostgresStore};

/// A database of one test's own: dropped (with any connection still open to it) when it goes.
pub struct TestDatabase {
    url: String,
    name: String,
}

impl TestDatabase {
    /// A new, empty database (no schema).
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    /// A new database with the schema migrated, copied from a template migrated once per test
    /// binary (a copy is far quicker than migrating each one).
    pub async fn migrated() -> Self {
        static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        let template = TEMPLATE
            .get_or_init(|| async {
                let db = Self::create(None).await;
                PostgresStore::connect(db.url(), &PoolSettings::default())
                    .await
                    .expect("the template database migrates");
                // Kept for the binary's life: templates must have no connections when copied,
                // and the pool above has gone.
                let name = db.name.clone();
                std::mem::forget(db);
                name
            })
            .await;
        Self::create(Some(template)).await
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn create(template: Option<&str>) -> Self {
        let server = server();
        let name = format!("ll_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin(server).await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        admin
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let url = database_url(server, &name);
        Self { url, name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (server().to_string(), self.name.clone());
        // Drop runs outside any runtime's reach: a thread of its own does the async call.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let admin = admin(&server).await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        });
        let _ = done.join();
    }
}

/// A superuser's connection to the server's `postgres` database (retried while it starts up).
async fn admin(server: &str) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio_postgres::connect(server, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return client;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the test PostgreSQL at {server} does not answer: {e}"),
        }
    }
}

/// `server` with its database changed to `name`.
fn database_url(server: &str, name: &str) -> String {
    let mut url = url::Url::parse(server).expect("LEDGERLINK_TEST_PG_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// The server's URL: `LEDGERLINK_TEST_PG_URL`, or a cluster started for this binary.
pub fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("LEDGERLINK_TEST_PG_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => start_cluster(),
    })
}

fn bin_dir() -> PathBuf {
    // Debian keeps each version's programs in /usr/lib/postgresql/VERSION/bin: the newest.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
             `apt-get install postgresql`, or run ./scripts/test, which does"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args` as the `postgres` user when this runs as root.
fn as_postgres(root: bool, program: &Path, args: &[&str]) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn start_cluster() -> String {
    let cluster = Cluster::start();
    let url = cluster.url().to_string();
    // The binary's cluster lives as long as the binary; its watchdog removes it after.
    std::mem::forget(cluster);
    url
}

/// A PostgreSQL cluster of a test's own (a temporary directory, a free loopback port, `fsync=off`),
/// which the test may stop and start again, as an operator's database going away and coming back.
/// A watchdog stops it and removes its files once the test binary is gone, whatever happened.
#[derive(Clone)]
pub struct Cluster {
    url: String,
    bin: PathBuf,
    root: bool,
    path: String,
    port: u16,
    /// Serving TLS with a certificate for 127.0.0.1 signed by a CA of its own (`ca.crt`).
    tls: bool,
}

impl Cluster {
    pub fn start() -> Self {
        Self::make(false)
    }

    /// A cluster serving TLS, its certificate for 127.0.0.1 signed by a CA made for it: the
    /// cluster and the CA's certificate file.
    pub fn start_tls() -> (Self, PathBuf) {
        let cluster = Self::make(true);
        let ca = PathBuf::from(format!("{}/ca.crt", cluster.path));
        (cluster, ca)
    }

    fn make(tls: bool) -> Self {
        let bin = bin_dir();
        let root = is_root();
        let dir = std::env::temp_dir().join(format!(
            "ll-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the test cluster");
        let path = dir.to_str().expect("a UTF-8 temp path").to_string();
        if root {
            let chown = Command::new("chown")
                .args(["postgres:postgres", &path])
                .status()
                .expect("chown runs");
            assert!(chown.success(), "cannot give {path} to the postgres user");
        }
        let data = format!("{path}/data");
        let init = as_postgres(
            root,
            &bin.join("initdb"),
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )
        .stdout(Stdio::null())
        .output()
        .expect("initdb runs");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            root,
            path,
            port,
            tls,
        };
        if tls {
            cluster.make_certificates();
        }
        // A watchdog that stops the server and removes its files once this test binary is gone
        // (the server outlives it otherwise).
        let script = format!(
            "while [ -d /proc/{parent} ]; do sleep 1; done; \
             {pg_ctl} -D {data} -m immediate -s stop >/dev/null 2>&1; rm -rf {path}",
            parent = std::process::id(),
            pg_ctl = cluster.bin.join("pg_ctl").display(),
            path = cluster.path,
        );
        // Never waited for: the watchdog outlives this binary on purpose, to clean up after it.
        #[allow(clippy::zombie_processes)]
        let _watchdog = as_postgres(root, Path::new("/bin/sh"), &["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the watchdog starts");
        cluster.start_again();
        cluster
    }

    /// A CA, and a server certificate for 127.0.0.1 signed by it (with `openssl`).
    fn make_certificates(&self) {
        let p = &self.path;
        let script = format!(
            "set -e; cd {p}; \
             openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=ledgerlink-test-ca; \
             openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1; \
             printf 'subjectAltName=IP:127.0.0.1' > san.ext; \
             openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext; \
             chmod 600 server.key"
        );
        let out = as_postgres(self.root, Path::new("/bin/sh"), &["-c", &script])
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "making the test certificates failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A superuser's URL to its `postgres` database.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = format!("{}/data", self.path);
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        let out = as_postgres(self.root, &self.bin.join("pg_ctl"), &all)
            .stdin(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(format!("{}/log", self.path)).unwrap_or_default()
        );
    }

    /// Stops the server at once (connections dropped, as a crash or a failover would).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "immediate", "-s", "stop"]);
    }

    /// Starts the server (again), and waits until it answers.
    pub fn start_again(&self) {
        // fsync off (the machine does not crash under a test), but every commit written before it
        // is answered: a test that stops the server at once must find what was committed.
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c max_connections=200",
            self.port, self.path
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={p}/server.crt -c ssl_key_file={p}/server.key",
                p = self.path
            ));
        }
        let log = format!("{}/log", self.path);
        self.pg_ctl(&["-l", &log, "-w", "-s", "-o", &options, "start"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the test PostgreSQL did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new, empty database on it: its URL.
    pub async fn database(&self) -> String {
        let name = format!("ll_test_{}", uuid::Uuid::new_v4().simple());
        admin(&self.url)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a database");
        database_url(&self.url, &name)
    }
}
