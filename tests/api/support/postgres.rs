//! The PostgreSQL leg: which server the tests use, whether they must have it
//! (`CBH_TEST_POSTGRES`), and a database of its own for each test.

use std::time::Duration;

/// The PostgreSQL server the tests use: `CBH_TEST_POSTGRES_URL`, by default the machine's own.
pub fn postgres_admin_url() -> String {
    std::env::var("CBH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// What `CBH_TEST_POSTGRES` asks of the PostgreSQL leg. Unset means `required`: a test that
/// passes without having run is a defect, so skipping must be asked for by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostgresLeg {
    /// An unreachable server or a missing `initdb` fails the test.
    Required,
    /// `CBH_TEST_POSTGRES=skip`: such tests return early, each saying so on the terminal.
    Skip,
}

pub fn postgres_leg() -> PostgresLeg {
    match std::env::var("CBH_TEST_POSTGRES").as_deref() {
        Err(_) | Ok("" | "required") => PostgresLeg::Required,
        Ok("skip") => PostgresLeg::Skip,
        Ok(other) => {
            panic!("CBH_TEST_POSTGRES={other:?}: expected `required` (the default) or `skip`")
        }
    }
}

/// Says on the terminal, past the test harness's capture of passing tests' output, that `test`
/// did not run.
pub fn announce_skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (CBH_TEST_POSTGRES=skip; unset it to require PostgreSQL)"
    );
}

/// Whether the PostgreSQL test `test` runs: the server at `CBH_TEST_POSTGRES_URL` answers.
/// When it does not, the test fails (the default), or with `CBH_TEST_POSTGRES=skip` it is
/// announced as skipped and this returns false.
pub fn postgres_available(test: &str) -> bool {
    static REACHABLE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let reachable = REACHABLE.get_or_init(|| {
        let url = url::Url::parse(&postgres_admin_url()).expect("CBH_TEST_POSTGRES_URL is a URL");
        let address = format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432)
        );
        let answers = std::net::ToSocketAddrs::to_socket_addrs(&address)
            .ok()
            .and_then(|mut addrs| addrs.next())
            .is_some_and(|addr| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
            });
        if answers {
            Ok(())
        } else {
            Err(format!(
                "nothing answers at {address} (CBH_TEST_POSTGRES_URL)"
            ))
        }
    });
    match (reachable, postgres_leg()) {
        (Ok(()), _) => true,
        (Err(why), PostgresLeg::Skip) => {
            announce_skip(test, why);
            false
        }
        (Err(why), PostgresLeg::Required) => panic!(
            "PostgreSQL is required and {why}; start it (.ci/run starts a throwaway cluster), \
             or set CBH_TEST_POSTGRES=skip to skip the PostgreSQL tests"
        ),
    }
}

/// A database of its own for one test, created on the PostgreSQL server and dropped with it.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let name = format!("cbh_test_{}", cbh_invite::domain::token::random_hex(12));
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin).expect("URL");
        url.set_path(&name);
        Self {
            url: url.to_string(),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime; a thread with its own runtime can block on it.
        let admin = postgres_admin_url();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map(drop)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
