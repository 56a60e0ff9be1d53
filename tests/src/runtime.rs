//! Launchers for the gateway under each runtime's local emulator. Every
//! process started here binds 127.0.0.1 and is stopped by its process group
//! id when the handle drops.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The Lambda binary name (cargo-lambda serves it at `/lambda-url/<name>`).
pub const LAMBDA_BIN: &str = "gateway";
/// How long to wait for the gateway to answer after starting it (the first
/// request may compile the function when the build cache is cold).
pub const READY_TIMEOUT: Duration = Duration::from_secs(900);

/// What every gateway process started here gets: static test credentials
/// and no instance-metadata lookups.
const AWS_TEST_ENV: [(&str, &str); 4] = [
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A running gateway process (and its children), stopped on drop.
pub struct GatewayProcess {
    child: Child,
    pub base_url: String,
    pub log_path: PathBuf,
    /// State the process kept on disk (wrangler's local KV and Durable
    /// Objects), removed once it has stopped.
    scratch: Option<PathBuf>,
}

impl GatewayProcess {
    /// The last `lines` lines of the process log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// Sends SIGTERM to the process itself (not its group), as a container
    /// runtime does.
    pub fn terminate(&self) -> Result<(), String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -TERM {} failed: {status}", self.child.id()))
        }
    }

    /// Waits at most `timeout` for the process to exit; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(None) => return Err(format!("still running after {timeout:?}")),
                Err(e) => return Err(format!("cannot wait for the process: {e}")),
            }
        }
    }

    fn stop(&mut self) {
        // The child leads its own process group: stop the whole group (the
        // emulator and the function processes it started), by its id. The
        // group may be gone already (a test stopped it): kill's complaint
        // is not shown.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        if self.wait_exit(Duration::from_secs(5)).is_ok() {
            return;
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(file) = File::open(path) else {
        return String::new();
    };
    let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.stop();
        if let Some(scratch) = &self.scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

/// `$CARGO_TARGET_DIR`, else `target/`.
fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| workspace_root().join("target"), PathBuf::from)
}

/// Where process logs and emulator state go: one directory that
/// `scripts/test` empties at the start of a run, so they never pile up in
/// the cached target dir.
fn runs_dir() -> PathBuf {
    target_dir().join("test-runs")
}

/// A log file for process `name` on `port`, opened twice (stdout, stderr).
fn log_files(name: &str, port: u16) -> Result<(PathBuf, File, File), String> {
    let dir = runs_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join(format!("conformance-{name}-{port}.log"));
    let log = File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    Ok((path, log, log_err))
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// A DynamoDB emulator (moto) on 127.0.0.1 with the gateway's table created.
pub struct DynamoEmulator {
    pub process: GatewayProcess,
    pub endpoint: String,
    pub table: String,
}

/// Starts `moto_server` (from the venv on PATH) and creates `table` with the
/// schema the Lambda adapter expects (`pk` string partition key, TTL on
/// `expires_at`) and the SSM SecureString `parameters` (name, value), using
/// boto3 from the same venv.
pub fn start_aws_emulator(
    table: &str,
    parameters: &[(String, String)],
) -> Result<DynamoEmulator, String> {
    use std::os::unix::process::CommandExt;

    let moto = which("moto_server").ok_or(
        "moto_server is not on PATH. Install it with `scripts/bootstrap` (a venv with `moto[server]`) \
         and put the venv's bin on PATH",
    )?;
    let python = moto.with_file_name("python");
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let (log_path, log, log_err) = log_files("moto", port)?;
    // Serial request handling: see tests/python/moto_serial_server.py.
    let child = Command::new(&python)
        .arg(workspace_root().join("tests/python/moto_serial_server.py"))
        .arg("127.0.0.1")
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start moto: {e}"))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let process = GatewayProcess {
        child,
        base_url: endpoint.clone(),
        log_path,
        scratch: None,
    };
    let script = r#"
import sys, time, boto3
endpoint, table = sys.argv[1], sys.argv[2]
client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
for attempt in range(100):
    try:
        client.list_tables()
        break
    except Exception:
        time.sleep(0.1)
client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
client.update_time_to_live(TableName=table,
                           TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
for pair in sys.argv[3:]:
    name, value = pair.split("=", 1)
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
"#;
    let pairs: Vec<String> = parameters.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let output = Command::new(python)
        .args(["-c", script, &endpoint, table])
        .args(&pairs)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .map_err(|e| format!("cannot run python for table setup: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "creating the DynamoDB table failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(DynamoEmulator {
        process,
        endpoint,
        table: table.to_owned(),
    })
}

/// Starts the Lambda adapter under `cargo lambda watch` on 127.0.0.1 with
/// `env` added to its environment, and waits until it serves requests.
pub fn start_lambda_watch(env: &[(String, String)]) -> Result<GatewayProcess, String> {
    use std::os::unix::process::CommandExt;

    let cargo_lambda = which("cargo-lambda").ok_or(
        "cargo-lambda is not on PATH. Install it with `scripts/bootstrap` \
         (a venv with `pip install cargo-lambda==1.9.2`) and put the venv's bin on PATH",
    )?;
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let (log_path, log, log_err) = log_files("lambda", port)?;

    let mut command = Command::new(cargo_lambda);
    command
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .args([
            "--ignore-changes",
            "--concurrency",
            "4",
            "--package",
            "gateway-aws-lambda",
            "--bin",
            LAMBDA_BIN,
        ])
        .current_dir(workspace_root())
        .envs(AWS_TEST_ENV)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start cargo lambda watch: {e}"))?;
    let mut process = GatewayProcess {
        child,
        base_url: format!("http://127.0.0.1:{port}/lambda-url/{LAMBDA_BIN}"),
        log_path,
        scratch: None,
    };
    wait_ready(&mut process)?;
    Ok(process)
}

/// Starts the `gateway` binary as a native HTTP server (no
/// `AWS_LAMBDA_RUNTIME_API`) on 127.0.0.1 with `env` added to its
/// environment, and waits until it serves requests. The binary must be
/// built (`cargo build -p gateway-aws-lambda --bin gateway`, which
/// `scripts/test` does).
pub fn start_native(env: &[(String, String)]) -> Result<GatewayProcess, String> {
    use std::os::unix::process::CommandExt;

    let binary = target_dir().join("debug").join(LAMBDA_BIN);
    if !binary.exists() {
        return Err(format!(
            "{} is missing: build it with `cargo build -p gateway-aws-lambda --bin {LAMBDA_BIN}`",
            binary.display()
        ));
    }
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let (log_path, log, log_err) = log_files("native", port)?;
    let mut command = Command::new(binary);
    command
        .current_dir(workspace_root())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .envs(AWS_TEST_ENV)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start the native server: {e}"))?;
    let mut process = GatewayProcess {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        log_path,
        scratch: None,
    };
    wait_ready(&mut process)?;
    Ok(process)
}

/// Starts the Worker under `wrangler dev --local` (workerd with local KV and
/// Durable Objects) on 127.0.0.1, built with the `test-hooks` feature, with
/// `env` as Worker variables, and waits until it serves requests.
///
/// A `GATEWAY_CONFIG` entry is not passed as a variable: like the Terraform
/// module, the config goes into the local `GATEWAY_KV` namespace and the
/// Worker is given its key in `GATEWAY_CONFIG_KV_KEY`.
pub fn start_wrangler_dev(env: &[(String, String)]) -> Result<GatewayProcess, String> {
    use std::os::unix::process::CommandExt;

    let worker_dir = workspace_root().join("cloudflare-worker");
    let wrangler = worker_dir.join("node_modules/.bin/wrangler");
    if !wrangler.is_file() {
        return Err(format!(
            "{} is missing. Install the Worker tooling with `scripts/bootstrap` (npm ci in cloudflare-worker/)",
            wrangler.display()
        ));
    }
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let inspector_port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let state_dir = runs_dir().join(format!("wrangler-state-{port}"));
    let _ = std::fs::remove_dir_all(&state_dir);
    let (log_path, log, log_err) = log_files("worker", port)?;

    let mut env = env.to_vec();
    if let Some(at) = env.iter().position(|(name, _)| name == "GATEWAY_CONFIG") {
        let (_, yaml) = env.remove(at);
        let key = "gateway-config/conformance";
        put_local_kv(&wrangler, &worker_dir, &state_dir, key, &yaml)?;
        env.push(("GATEWAY_CONFIG_KV_KEY".into(), key.into()));
    }

    let mut command = Command::new(&wrangler);
    command
        .args(["dev", "--local", "--ip", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--inspector-port")
        .arg(inspector_port.to_string())
        .arg("--show-interactive-dev-session=false")
        .arg("--persist-to")
        .arg(&state_dir);
    for (name, value) in &env {
        command.arg("--var").arg(format!("{name}:{value}"));
    }
    command
        .current_dir(&worker_dir)
        .env("GATEWAY_WORKER_FEATURES", "test-hooks")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CI", "true")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start wrangler dev: {e}"))?;
    let mut process = GatewayProcess {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        log_path,
        scratch: Some(state_dir),
    };
    wait_ready(&mut process)?;
    Ok(process)
}

/// Writes `value` under `key` into the local `GATEWAY_KV` namespace that
/// `wrangler dev --persist-to state_dir` serves.
fn put_local_kv(
    wrangler: &Path,
    worker_dir: &Path,
    state_dir: &Path,
    key: &str,
    value: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let file = state_dir.join("kv-value");
    std::fs::write(&file, value).map_err(|e| format!("{}: {e}", file.display()))?;
    let output = Command::new(wrangler)
        .args([
            "kv",
            "key",
            "put",
            "--binding",
            "GATEWAY_KV",
            "--local",
            "--persist-to",
        ])
        .arg(state_dir)
        .arg(key)
        .arg("--path")
        .arg(&file)
        .current_dir(worker_dir)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CI", "true")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run wrangler kv key put: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "wrangler kv key put {key} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

fn wait_ready(process: &mut GatewayProcess) -> Result<(), String> {
    let url = format!("{}/v1/models", process.base_url);
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if let Ok(Some(status)) = process.child.try_wait() {
            return Err(format!(
                "the gateway process exited ({status}) before it was ready; log:\n{}",
                process.log_tail(40)
            ));
        }
        if let Ok(status) = http_get_status(&url) {
            if status == 200 {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "the gateway did not answer {url} within {READY_TIMEOUT:?}; log:\n{}",
        process.log_tail(40)
    ))
}

/// A blocking GET with a short timeout, for readiness probes.
fn http_get_status(url: &str) -> Result<u16, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
    })
}
