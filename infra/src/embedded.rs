//! Private Postgres and NATS servers for `eshop serve --embedded`: started from the installed
//! binaries with their data under one directory, on free ports, and stopped with eshop. They are
//! the same servers production uses, so every code path is the production one.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eshop_commands::BoxError;

const START_LIMIT: Duration = Duration::from_secs(60);

/// The servers, running until `stop`.
pub struct EmbeddedServices {
    postgres: PrivatePostgres,
    nats: Child,
    pub database_url: String,
    pub nats_url: String,
}

impl EmbeddedServices {
    /// Starts both under `data_dir` (`pg/` and `nats/` inside it), reusing the data a previous
    /// start left.
    pub fn start(data_dir: &Path) -> Result<Self, BoxError> {
        std::fs::create_dir_all(data_dir)?;
        let data_dir = data_dir.canonicalize()?;
        let mut postgres = PrivatePostgres::start(&data_dir.join("pg"))?;
        let (nats, nats_url) = match start_nats(&data_dir.join("nats")) {
            Ok(started) => started,
            Err(error) => {
                postgres.stop();
                return Err(error);
            }
        };
        Ok(Self {
            database_url: postgres.url("eshop"),
            postgres,
            nats,
            nats_url,
        })
    }

    /// Stops both and waits for them (Postgres with a fast shutdown: it checkpoints).
    pub fn stop(mut self) {
        signal(&self.nats, "TERM");
        let _ = self.nats.wait();
        self.postgres.stop();
    }
}

/// A Postgres server of eshop's own: its data in one directory, reachable only on a Unix socket
/// there, trusted. Stopped and started again on the same port (fault tests do).
pub struct PrivatePostgres {
    child: Option<Child>,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Starts a server on `data` (made with `initdb` when empty), on a free port.
    pub fn start(data: &Path) -> Result<Self, BoxError> {
        let bin = postgres_bin_dir()?;
        if !data.join("PG_VERSION").exists() {
            std::fs::create_dir_all(data)?;
            if is_root() {
                // Postgres refuses to run as root: its files belong to the `postgres` user.
                run(Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(data))?;
            }
            let mut initdb = server_command(&bin.join("initdb"));
            initdb.arg("-D").arg(data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ]);
            run(&mut initdb)?;
        }
        // A server left running by an eshop that was killed holds the data: stop it first.
        if data.join("postmaster.pid").exists() {
            let mut stop = server_command(&bin.join("pg_ctl"));
            stop.arg("stop").arg("-D").arg(data).args(["-m", "fast"]);
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        let mut server = Self {
            child: None,
            data: data.to_path_buf(),
            bin,
            port: free_port()?,
        };
        server.start_again()?;
        Ok(server)
    }

    /// Starts the server again after `stop`, on the same port and data.
    pub fn start_again(&mut self) -> Result<(), BoxError> {
        let mut postgres = server_command(&self.bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            // Only a Unix socket in the data directory: nothing else on the machine reaches it.
            .arg("-k")
            .arg(&self.data)
            .args(["-c", "listen_addresses="])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(postgres.spawn()?);
        let socket = self.data.join(format!(".s.PGSQL.{}", self.port));
        wait_until("Postgres", || socket.exists())
    }

    /// Stops it with a fast shutdown (SIGINT: sessions end, it checkpoints and exits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "INT");
            let _ = child.wait();
        }
    }

    /// The URL of one of its databases.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/{database}?host={}",
            self.port,
            self.data.display()
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn start_nats(store: &Path) -> Result<(Child, String), BoxError> {
    std::fs::create_dir_all(store)?;
    let port = free_port()?;
    let child = Command::new(find_binary(
        "nats-server",
        &["/usr/sbin", "/usr/local/bin"],
    )?)
    .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
    .arg(store)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()?;
    wait_until("NATS", || TcpStream::connect(("127.0.0.1", port)).is_ok())?;
    Ok((child, format!("nats://127.0.0.1:{port}")))
}

/// Where `initdb`, `pg_ctl` and `postgres` are: `ESHOP_PG_BIN`, else the newest Debian
/// install under /usr/lib/postgresql, else the `PATH`.
fn postgres_bin_dir() -> Result<PathBuf, BoxError> {
    if let Ok(dir) = std::env::var("ESHOP_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let initdb = find_binary("initdb", &[])?;
    Ok(initdb.parent().map(Path::to_path_buf).unwrap_or_default())
}

fn find_binary(name: &str, extra_dirs: &[&str]) -> Result<PathBuf, BoxError> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!("{name} is not installed (scripts/services installs it on Debian and Ubuntu)")
                .into()
        })
}

/// The server binary, run as the `postgres` user when eshop runs as root.
fn server_command(binary: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(binary);
        command
    } else {
        Command::new(binary)
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

fn run(command: &mut Command) -> Result<(), BoxError> {
    let output = command.output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into())
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

fn free_port() -> Result<u16, BoxError> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), BoxError> {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() > START_LIMIT {
            return Err(format!("{what} did not start within {} s", START_LIMIT.as_secs()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
